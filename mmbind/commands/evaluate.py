"""`mmbind eval`, `mmbind report` and `mmbind compare`."""
from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    pass
