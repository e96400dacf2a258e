"""Options shared by the commands that run a model."""
from __future__ import annotations

from typing import Any, Callable

import click

DEVICE_HELP = "Where the model runs: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps."


def device_option(default: str | None = "auto", help: str = DEVICE_HELP) -> Callable[[Any], Any]:
    """``--device``: checked when the command runs (``mmbind.devices.resolve_device``), so
    ``--help`` never imports torch."""
    return click.option("--device", default=default, metavar="auto|cpu|cuda[:N]|mps", show_default=default is not None,
                        help=help)
