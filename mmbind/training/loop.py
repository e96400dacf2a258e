"""The one epoch loop that every training stage (anchor pretraining, binding) runs on each rank.

Per epoch: torch is reseeded from the stage's epoch seed, the stage's loader gets the epoch
(this rank's share of it), every batch goes through the stage's ``step``, and the step and epoch
records go to metrics.jsonl (the epoch also to the log) and then to the ``on_step_end`` /
``on_epoch_end`` hooks. ``checkpoint(epochs_done, step_in_epoch)``
runs after each epoch (step 0) and, with ``checkpoint_every`` = N, after every N-th step of an
epoch; a run resumed from a mid-epoch checkpoint starts at that step with torch's RNG state as
it was, so it ends exactly as the uninterrupted run.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Protocol, Sized

import torch

from mmbind.errors import TrainingError
from mmbind.progress import progress
from mmbind.tracking import emit
from mmbind.training.data import Batch
from mmbind.training.metrics import EpochMeter, MetricsLog, log_epoch


class EpochLoader(Sized, Iterable[Batch], Protocol):
    def epoch(self, epoch: int, first_step: int = 0) -> "EpochLoader":
        """Ready to yield this rank's batches of ``epoch`` from ``first_step`` on."""


class Stage(Protocol):
    """What the loop needs from a stage (see PretrainStage and BindStage)."""

    name: str  # the records' "stage" and the progress bar's label
    epochs: int

    def seed(self, epoch: int) -> int:
        """The seed torch gets at the start of ``epoch`` (0-based)."""

    def loader(self, num_workers: int, device: torch.device) -> EpochLoader:
        """The stage's loader (made once per run of the loop)."""

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

    def run(self, stage: Stage, start_epoch: int = 0, checkpoint: Callable[[int, int], None] | None = None,
            start_step: int = 0, rng_state: torch.Tensor | None = None, checkpoint_every: int = 0) -> None:
        """Epochs ``start_epoch`` .. ``stage.epochs - 1``, the first from ``start_step`` on (torch's
        RNG state then set to ``rng_state``); ``checkpoint`` as the module says."""
        loader = stage.loader(self.num_workers, self.device)
        for epoch in range(start_epoch, stage.epochs):
            torch.manual_seed(stage.seed(epoch))
            first = start_step if epoch == start_epoch else 0
            if first and rng_state is not None:
                torch.set_rng_state(rng_state)
            batches = loader.epoch(epoch, first)
            total = first + len(batches)
            meter = EpochMeter()
            bar = progress(meter.iterate(batches), total=len(batches),
                           desc=f"{stage.name} {epoch + 1}/{stage.epochs}", unit="step", enabled=self.bars)
            for done, batch in enumerate(bar, start=first + 1):
                record = stage.step(batch, epoch)
                check_finite(record, stage.name, epoch, done)
                meter.step_done(record)
                self.metrics.write(record)
                emit("on_step_end", record=record)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{meter.mean_loss():.3f}")
                if checkpoint is not None and checkpoint_every and done % checkpoint_every == 0 and done < total:
                    checkpoint(epoch, done)
            summary = meter.record(stage.name, epoch, **stage.epoch_fields())
            self.metrics.write(summary)
            emit("on_epoch_end", record=summary)
            log_epoch(summary, stage.epochs)
            if checkpoint is not None:
                checkpoint(epoch + 1, 0)
