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
