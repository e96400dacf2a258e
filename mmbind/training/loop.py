"""The one epoch loop that every training stage (anchor pretraining, binding) runs on each rank.

Per epoch: torch is reseeded from the stage's epoch seed, the loader yields this rank's share of
the epoch's plan (one pass over every epoch, so that workers load across epoch ends), every
batch goes through the stage's ``step``, and the step and epoch records
go to metrics.jsonl (the epoch also to the log), then ``after_epoch`` runs (binding's checkpoint).
"""
from __future__ import annotations

from itertools import islice
from typing import Any, Callable, Iterator, Protocol

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


class EpochPlans:
    """Every epoch's plan, computed once when first asked for, by the loop or by the loader
    running ahead into the next epoch. A plan may draw from torch's global stream (right after
    the epoch's reseed): it is computed on a saved copy of the stream, and the state it leaves
    is kept for the loop to start the epoch from, so where it is computed changes nothing."""

    def __init__(self, stage: Stage):
        self.stage = stage
        self._plans: dict[int, tuple[list[list[PlanItem]], torch.Tensor]] = {}

    def get(self, epoch: int) -> tuple[list[list[PlanItem]], torch.Tensor]:
        """The epoch's plan and torch's CPU RNG state after it was drawn."""
        if epoch not in self._plans:
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(self.stage.seed(epoch))
                plan = self.stage.plan(epoch)
                self._plans[epoch] = plan, torch.get_rng_state()
        return self._plans[epoch]

    def forget(self, epoch: int) -> None:
        self._plans.pop(epoch, None)

    def batches(self, epochs: range) -> Iterator[list[PlanItem]]:
        """Every batch of ``epochs``, in order: one pass of the loader over the whole stage."""
        for epoch in epochs:
            yield from self.get(epoch)[0]


class EpochLoop:
    """Runs stages' epochs with one DataLoader per stage (``num_workers`` loading processes)."""

    def __init__(self, metrics: MetricsLog, num_workers: int, device: torch.device, bars: bool = False):
        self.metrics = metrics
        self.num_workers = num_workers
        self.device = device
        self.bars = bars  # show progress bars (rank 0 on a terminal)

    def run(self, stage: Stage, start_epoch: int = 0, after_epoch: Callable[[int], None] | None = None) -> None:
        """Epochs ``start_epoch`` .. ``stage.epochs - 1``; ``after_epoch(epoch)`` after each.

        The loader makes one pass over all the epochs' batches, so its workers never wait for
        an epoch to start (nor the first step of an epoch for them)."""
        epochs = range(start_epoch, stage.epochs)
        plans = EpochPlans(stage)
        loader = PlanLoader(stage.dataset, self.num_workers, self.device)
        loader.plan = plans.batches(epochs)
        batches = iter(loader)
        for epoch in epochs:
            plan, rng_state = plans.get(epoch)
            torch.manual_seed(stage.seed(epoch))  # every device's generator ...
            torch.set_rng_state(rng_state)  # ... and the CPU stream where drawing the plan left it
            meter = EpochMeter()
            bar = progress(meter.iterate(islice(batches, len(plan))), total=len(plan),
                           desc=f"{stage.name} {epoch + 1}/{stage.epochs}", unit="step", enabled=self.bars)
            for batch in bar:
                record = stage.step(batch, epoch)
                meter.step_done(record)
                self.metrics.write(record)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{meter.mean_loss():.3f}")
            plans.forget(epoch)
            summary = meter.record(stage.name, epoch, **stage.epoch_fields())
            self.metrics.write(summary)
            log_epoch(summary, stage.epochs)
            if after_epoch is not None:
                after_epoch(epoch)
