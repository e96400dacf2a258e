"""The TensorBoard tracker (``[log] trackers = ["tensorboard"]``): event files in
``RUN/tensorboard``, written with ``torch.utils.tensorboard`` (needs the tensorboard package)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmbind.plugin.hookspecs import hookimpl
from mmbind.tracking import Tracker, eval_scalars

if TYPE_CHECKING:
    from mmbind.recipe import Recipe

LOG_DIR = "tensorboard"  # inside the run folder


class TensorBoardTracker(Tracker):
    """Scalars ``<stage>/<field>`` per step (x: the global step) and per epoch (x: the epoch),
    ``eval/...`` after evaluation, and the recipe as text."""

    name = "tensorboard"

    def __init__(self, recipe: "Recipe", run_dir: Path) -> None:
        super().__init__()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / LOG_DIR))

    def log(self, values: dict[str, float], step: int, axis: str) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, global_step=step)

    @hookimpl
    def on_train_start(self, recipe: "Recipe", run_dir: Path) -> None:
        text = json.dumps(recipe.raw, indent=2, default=str)
        self.writer.add_text("recipe", "\n".join("    " + line for line in text.splitlines()))  # markdown code

    @hookimpl
    def on_epoch_end(self, record: dict[str, Any]) -> None:
        super().on_epoch_end(record)
        self.writer.flush()  # an epoch's curves are on disk when the epoch ends

    @hookimpl
    def on_eval_end(self, results: dict[str, Any], run_dir: Path) -> None:
        self.log(eval_scalars(results), self.last_step, "eval")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
