"""`mmbind schema`: the recipe JSON Schema, for editors that complete and check recipes."""
from __future__ import annotations

import json
from pathlib import Path

import click


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
                  help="Write the schema to this file instead of printing it.")
    def schema(output: Path | None) -> None:
        """Print the JSON Schema of recipe files (every table and field, its type, bounds and default)."""
        from mmbind.recipe import json_schema

        text = json.dumps(json_schema(), indent=2) + "\n"
        if output is None:
            click.echo(text, nl=False)
            return
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        click.echo(f"schema: {output}")
