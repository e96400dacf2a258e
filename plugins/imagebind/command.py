"""``mmbind import imagebind CHECKPOINT --out DIR``: the command; click only at import time."""
from __future__ import annotations

import json

import click

from mmbind_plugins.imagebind import MODALITIES


def import_group(cli: click.Group) -> click.Group:
    """The ``mmbind import`` group, shared by every plugin that imports foreign checkpoints."""
    group = cli.commands.get("import")
    if group is None:
        group = click.Group("import", help="Turn another framework's checkpoint into an mmbind binder folder.")
        cli.add_command(group)
    return group


def _pairs(value: str, option: str) -> dict[str, int]:
    pairs = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, sep, number = part.partition("=")
        if not sep or not number.strip().isdigit():
            raise click.BadParameter(f"{part!r}: expected NAME=INTEGER", param_hint=option)
        pairs[name.strip()] = int(number)
    return pairs


def register(cli: click.Group) -> None:
    @import_group(cli).command(name="imagebind")
    @click.argument("checkpoint", type=click.Path(dir_okay=False))
    @click.option("--out", required=True, type=click.Path(file_okay=False), help="binder folder to write")
    @click.option("--modalities", default=",".join(MODALITIES), show_default=True,
                  help="ImageBind towers to import (vision is always the anchor); add 'video' for the "
                       "vision tower on video clips")
    @click.option("--heads", default="", help="attention heads per tower when they are not imagebind_huge's, "
                                              "e.g. vision=4,text=4")
    def imagebind(checkpoint: str, out: str, modalities: str, heads: str) -> None:
        """Import ImageBind's CHECKPOINT (e.g. imagebind_huge.pth) as a binder folder.

        Only the requested towers are read (the file is memory-mapped, never unpickled). The
        result loads with Binder.from_pretrained and works with encode, embed, search, arith,
        eval and further binding."""
        from mmbind_plugins.imagebind.convert import import_imagebind

        wanted = [m.strip() for m in modalities.split(",") if m.strip()]
        try:
            folder = import_imagebind(checkpoint, out, modalities=wanted, num_heads=_pairs(heads, "--heads"))
        except ValueError as error:  # a bad file (CheckpointError) or a bad name
            raise click.ClickException(str(error)) from None
        towers = json.loads((folder / "config.json").read_text())["towers"]
        click.echo(f"imported {', '.join(towers)} from {checkpoint} into {folder}")
