"""The one epoch loop that every training stage (anchor pretraining, binding) runs on each rank.

Per epoch: torch is reseeded from the stage's epoch seed, the loader gets this rank's share of
the epoch's plan, every batch goes through the stage's ``step``, and the step and epoch records
go to metrics.jsonl (the epoch also to the log), then ``after_epoch`` runs (binding's checkpoint).
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

import torch

from mmbind.progress import progress
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
                meter.step_done(record)
                self.metrics.write(record)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{meter.mean_loss():.3f}")
            summary = meter.record(stage.name, epoch, **stage.epoch_fields())
            self.metrics.write(summary)
            log_epoch(summary, stage.epochs)
            if after_epoch is not None:
                after_epoch(epoch)
