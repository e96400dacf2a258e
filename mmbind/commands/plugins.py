"""`mmbind plugins`, `mmbind list`, `mmbind check-plugin` and `mmbind new-plugin`."""
from __future__ import annotations

import json
from pathlib import Path

import click


def register(cli: click.Group) -> None:
    @cli.command()
    def plugins() -> None:
        """Print each installed plugin's name, version, plugin API and hooks as JSON."""
        from mmbind.plugin.manager import plugin_info

        click.echo(json.dumps(plugin_info(), indent=2))

    @cli.command(name="list")
    @click.argument("kind", type=click.Choice(["modalities", "encoders", "datasets", "losses"]))
    @click.argument("pattern", default="*")
    def list_(kind: str, pattern: str) -> None:
        """List registered modalities, encoders, datasets or losses matching PATTERN (wildcards)."""
        from mmbind.plugin.manager import registries

        registry = registries()[kind]
        for name in registry.list(pattern):
            item = registry.get(name)
            extra = f"[{item.modality}] " if hasattr(item, "modality") else ""
            click.echo(f"{name:32s} {extra}{item.description}  ({registry.owner(name)})")

    @cli.command(name="check-plugin")
    @click.argument("name")
    def check_plugin(name: str) -> None:
        """Run the conformance suite on everything plugin NAME registers (see docs/plugins.md).

        Exits with status 1 when a check fails."""
        from mmbind.plugin.conformance import check_plugin as run

        try:
            report = run(name)
        except KeyError as error:
            raise click.ClickException(str(error.args[0])) from None
        click.echo(report.summary())
        if not report.ok:
            raise SystemExit(1)

    @cli.command(name="new-plugin")
    @click.argument("name")
    @click.option("--modality", "-m", required=True, help="The new modality's name, e.g. braille.")
    @click.option("--channels", default=3, show_default=True, type=click.IntRange(1, 64),
                  help="Channels of the sensor's signal.")
    @click.option("--output", "-o", default=".", show_default=True, type=click.Path(file_okay=False, path_type=Path),
                  help="Folder to write the package mmbind-NAME into.")
    def new_plugin(name: str, modality: str, channels: int, output: Path) -> None:
        """Write a ready plugin package for a new sensor modality: hooks, loader, encoder, a
        simulated dataset composed with the digits world, a recipe, tests and a README."""
        from mmbind.plugin.scaffold import new_plugin as write

        try:
            root = write(name, modality, output, channels=channels)
        except (ValueError, FileExistsError) as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"wrote {root}\nnext: pip install -e '{root}[test]' && mmbind check-plugin {name} "
                   f"&& pytest {root} && mmbind run {root}/recipes/{name}.toml")
