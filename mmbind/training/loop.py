"""The one epoch loop that every training stage (anchor pretraining, binding) runs on each rank.

Per epoch: torch is reseeded from the stage's epoch seed, the loader gets this rank's share of
the epoch's plan, every batch goes through the stage's ``step``, and the step and epoch records
go to metrics.jsonl (the epoch also to the log) and then to the ``on_step_end`` / ``on_epoch_end``
hooks, then ``after_epoch`` runs (binding's checkpoint).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Protocol

import torch

from mmbind.errors import TrainingError
from mmbind.progress import progress
from mmbind.tracking import emit
from mmbind.training.data import Batch, BindDataset, PlanLoader
from mmbind.training.metrics import EpochMeter, MetricsLog, log_epoch
from mmbind.training.plan import PlanItem


class Stage(Protocol):
    """What the loop needs from a stage (see PretrainStage and BindStage)."""

    name: str  # the records' "stage" and the progress bar's label
    epochs: int
    dataset: BindDataset

    def seed(self, epoch: int) -> int:
        """The seed torch gets at the start of ``epoch`` (0-based)."""

    def plan(self, epoch: int) -> list[list[PlanItem]]:
        """This rank's items for every step of ``epoch``."""

    def step(self, batch: Batch, epoch: int) -> dict[str, Any]:
        """Train on one batch; return the step's metrics record."""

    def epoch_fields(self) -> dict[str, Any]:
        """Fields the stage adds to its epoch records."""


def check_finite(record: dict[str, Any], stage: str, epoch: int, step_in_epoch: int) -> None:
    """TrainingError naming the step if a loss in its record is NaN or infinite (the weights
    are then no longer finite either, so nothing after it may be saved)."""
    bad = {k: v for k, v in record.items() if (k == "loss" or k.startswith("loss/")) and not math.isfinite(v)}
    if bad:
        step = f"step {record['step']}" if "step" in record else f"step {step_in_epoch}"
        values = ", ".join(f"{k} = {v}" for k, v in bad.items())
        raise TrainingError(f"{stage} {step} (epoch {epoch + 1}, step {step_in_epoch} of the epoch): the loss is "
                            f"not finite ({values})")


class EpochLoop:
    """Runs stages' epochs with one DataLoader per stage (``num_workers`` loading processes)."""

    def __init__(self, metrics: MetricsLog, num_workers: int, device: torch.device, bars: bool = False):
        self.metrics = metrics
        self.num_workers = num_workers
        self.device = device
        self.bars = bars  # show progress bars (rank 0 on a terminal)

    def run(self, stage: Stage, start_epoch: int = 0, after_epoch: Callable[[int], None] | None = None) -> None:
        """Epochs ``start_epoch`` .. ``stage.epochs - 1``; ``after_epoch(epoch)`` after each."""
        loader = PlanLoader(stage.dataset, self.num_workers, self.device)
        for epoch in range(start_epoch, stage.epochs):
            torch.manual_seed(stage.seed(epoch))
            loader.plan = stage.plan(epoch)
            meter = EpochMeter()
            bar = progress(meter.iterate(loader), total=len(loader), desc=f"{stage.name} {epoch + 1}/{stage.epochs}",
                           unit="step", enabled=self.bars)
            for batch in bar:
                record = stage.step(batch, epoch)
                check_finite(record, stage.name, epoch, meter.steps + 1)
                meter.step_done(record)
                self.metrics.write(record)
                emit("on_step_end", record=record)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{meter.mean_loss():.3f}")
            summary = meter.record(stage.name, epoch, **stage.epoch_fields())
            self.metrics.write(summary)
            emit("on_epoch_end", record=summary)
            log_epoch(summary, stage.epochs)
            if after_epoch is not None:
                after_epoch(epoch)
