"""Logging and progress bars, one policy for every long step.

Modules log through ``logging.getLogger(__name__)`` (all under the "mmbind" logger); the CLI's
``-v``/``-q`` set its level through ``configure``. Progress bars (tqdm, with totals) appear only
when stderr is a terminal and the "mmbind" logger shows INFO, so logs of batch jobs and CI stay
clean. No heavy import here: this module is on the CLI's start-up path.
"""
from __future__ import annotations

import logging
import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
logger = logging.getLogger("mmbind")


def configure(verbosity: int = 0) -> None:
    """Send mmbind's log records to stderr: -1 warnings only, 0 progress (INFO), 1+ debug."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logger.setLevel(level)
    if not any(getattr(h, "_mmbind", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s" if verbosity <= 0 else
                                               "%(asctime)s %(name)s %(levelname)s: %(message)s"))
        handler._mmbind = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False


def bars_enabled() -> bool:
    """True when a progress bar would be seen: stderr is a terminal and INFO is shown."""
    return sys.stderr.isatty() and logger.isEnabledFor(logging.INFO)


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it",
             enabled: bool | None = None) -> Iterator[T] | Iterable[T]:
    """``iterable`` wrapped in a tqdm bar with its total when bars are enabled, else as it is."""
    if not (bars_enabled() if enabled is None else enabled):
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, file=sys.stderr)
