"""The `mmbind` command. Importing this module must stay cheap: no torch, timm or umap here."""
from __future__ import annotations

import sys

import click

from mmbind import __version__
from mmbind.errors import UserError


class _Group(click.Group):
    """The root group: an error in what the user gave (``UserError``: a bad file, recipe, store
    or name) ends the command with its one-line message and exit status 1; ``--traceback`` (or
    ``-v``) shows the stack instead. Any other exception is a bug and keeps its traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except UserError as error:
            if ctx.meta.get("mmbind.traceback"):
                raise
            raise click.ClickException(str(error)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mmbind")
@click.option("-v", "--verbose", count=True, help="Debug log output, with timestamps, and error tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr; no progress bars.")
@click.option("--traceback", is_flag=True, help="Show the stack of an input or recipe error, not just its message.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, traceback: bool) -> None:
    """Bind many modalities into one embedding space through a frozen anchor."""
    from mmbind.progress import configure

    configure(-1 if quiet else verbose)
    ctx.meta["mmbind.traceback"] = traceback or verbose > 0


def _register_builtin_commands() -> None:
    from mmbind.commands import embeddings, export, plugins, recipes, results, schema, serve

    for module in (plugins, recipes, results, embeddings, export, schema, serve):
        module.register(cli)


def main(argv: list[str] | None = None) -> None:
    from mmbind.plugin.manager import register_commands

    _register_builtin_commands()
    register_commands(cli)
    try:
        cli.main(args=argv, prog_name="mmbind", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
