"""The `mmbind` command. Importing this module must stay cheap: no torch, timm or umap here."""
from __future__ import annotations

import json
import sys

import click

from mmbind import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mmbind")
def cli() -> None:
    """Bind many modalities into one embedding space through a frozen anchor."""


@cli.command()
def plugins() -> None:
    """Print each installed plugin's name, version and hooks as JSON."""
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


def _register_builtin_commands() -> None:
    from mmbind.commands import embeddings, recipes, results, serve

    for module in (recipes, results, embeddings, serve):
        module.register(cli)


def main(argv: list[str] | None = None) -> None:
    from mmbind.plugin.manager import register_commands

    _register_builtin_commands()
    register_commands(cli)
    try:
        cli.main(args=argv, prog_name="mmbind", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
