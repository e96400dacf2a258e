"""The Weights & Biases tracker (``[log] trackers = ["wandb"]``): one W&B run per mmbind run,
its files under ``RUN/wandb``. W&B's own environment variables apply: ``WANDB_MODE=offline``
(no network; ``wandb sync`` uploads later), ``WANDB_PROJECT`` (default: the recipe's name),
``WANDB_ENTITY``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmbind.plugin.hookspecs import hookimpl
from mmbind.tracking import Tracker, eval_scalars

if TYPE_CHECKING:
    from mmbind.recipe import Recipe


class WandbTracker(Tracker):
    """Each record's fields as ``<stage>/<field>`` with its x value ``<stage>/step`` or
    ``<stage>/epoch`` (W&B's own step just counts calls); evaluation's numbers go to the run's
    summary; the recipe is the run's config."""

    name = "wandb"

    def __init__(self, recipe: "Recipe", run_dir: Path) -> None:
        super().__init__()
        import wandb

        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or recipe.name, dir=str(run_dir),
                              name=run_dir.name, config=recipe.raw, reinit="finish_previous",
                              settings=wandb.Settings(console="off", silent=True))

    def log(self, values: dict[str, float], step: int, axis: str) -> None:
        self.run.log({**values, axis: step})

    @hookimpl
    def on_train_start(self, recipe: "Recipe", run_dir: Path) -> None:
        self.run.config.update({"run_dir": str(run_dir)}, allow_val_change=True)

    @hookimpl
    def on_eval_end(self, results: dict[str, Any], run_dir: Path) -> None:
        self.run.summary.update(eval_scalars(results))

    def close(self) -> None:
        self.run.finish()
