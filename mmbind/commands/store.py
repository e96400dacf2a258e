"""`mmbind embed`, `mmbind search`, `mmbind arith` and `mmbind index`."""
from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    pass
