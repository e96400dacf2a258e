"""What a run records: ``metrics.jsonl`` (the record of truth) and the per-epoch summary log line.

Records, one JSON object a line: ``pretrain`` (per anchor-pretraining step), ``pretrain_epoch``,
``anchor_cache`` (``computed``, ``hits``, ``seconds`` of the cache fill), ``bind`` (per step:
``loss/<m>``, ``temperature/<m>``, ``lr``), ``bind_epoch``. Epoch records carry ``steps``,
``seconds``, ``data_wait_share`` (the share of the epoch spent blocked on the data loader) and
the mean ``loss``. Rank 0 alone writes.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, TypeVar

from mmbind import distributed as dist

logger = logging.getLogger(__name__)
T = TypeVar("T")
# Epoch records round their timings to this many decimals.
TIMING_DECIMALS = 4
# Records of these stages are redone, step by step, by a resumed run.
RESUMED_STAGES = ("bind", "bind_epoch")


class MetricsLog:
    """The run's ``metrics.jsonl``: opened on the first record, line-buffered so that a killed
    run keeps every record written; on other ranks than 0 every method does nothing.
    Use as a context manager (or call ``close``) to close the file. ``listeners`` are called
    with every record once it is written (e.g. a benchmark timing something between steps)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self._file: IO[str] | None = None

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""
        if not dist.is_main():
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", buffering=1)  # line-buffered
        self._file.write(json.dumps(record) + "\n")
        for listener in self.listeners:
            listener(record)

    def close(self) -> None:
        """Close the file (the next record reopens it, appending)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def truncate(self, global_step: int) -> None:
        """On resume, drop the records of the binding steps after the checkpoint's
        ``global_step`` (they are redone) and the anchor-cache record (the resumed run logs its own)."""
        if not (dist.is_main() and self.path.exists()):
            return

        def keep(record: dict[str, Any]) -> bool:
            if record.get("stage") in RESUMED_STAGES:
                return record["step"] <= global_step
            return record.get("stage") != "anchor_cache"

        lines = [line for line in self.path.read_text().splitlines() if keep(json.loads(line))]
        self.path.write_text("".join(line + "\n" for line in lines))


def step_loss(record: dict[str, Any]) -> float | None:
    """The loss of one step's record: its ``loss``, or the mean of its ``loss/<modality>`` values."""
    values = [v for k, v in record.items() if k == "loss" or k.startswith("loss/")]
    return sum(values) / len(values) if values else None


class EpochMeter:
    """Wall time of an epoch's loop, the part of it spent blocked on the data loader, and the
    steps' losses. Iterate over the loader through ``iterate`` and call ``step_done`` per step."""

    def __init__(self) -> None:
        self.steps = 0
        self.wait = 0.0
        self.losses: list[float] = []
        self.started = time.perf_counter()
        self.ended: float | None = None

    def iterate(self, loader: Iterable[T]) -> Iterator[T]:
        """The loader's batches; the time spent waiting for each is added to ``wait``."""
        iterator = iter(loader)
        self.started = time.perf_counter()
        while True:
            t = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                self.ended = time.perf_counter()
                return
            self.wait += time.perf_counter() - t
            yield batch

    def step_done(self, record: dict[str, Any]) -> None:
        """Count a step; its loss (see ``step_loss``) goes into the epoch's mean."""
        self.steps += 1
        loss = step_loss(record)
        if loss is not None:
            self.losses.append(loss)

    def mean_loss(self) -> float:
        """The mean of the steps' losses so far (0 before any)."""
        return sum(self.losses) / max(1, len(self.losses))

    @property
    def seconds(self) -> float:
        """Time since the loop started, up to its end once it has ended."""
        return (self.ended or time.perf_counter()) - self.started

    @property
    def wait_share(self) -> float:
        """The share of ``seconds`` spent waiting for batches."""
        return self.wait / self.seconds if self.seconds > 0 else 0.0

    def record(self, stage: str, epoch: int, **fields: Any) -> dict[str, Any]:
        """The ``<stage>_epoch`` record of epoch ``epoch`` (0-based), with ``fields`` added
        before the mean loss."""
        record = {"stage": f"{stage}_epoch", "epoch": epoch + 1, "steps": self.steps,
                  "seconds": round(self.seconds, TIMING_DECIMALS),
                  "data_wait_share": round(self.wait_share, TIMING_DECIMALS), **fields}
        if self.losses:
            record["loss"] = self.mean_loss()
        return record


def log_epoch(record: dict[str, Any], epochs: int) -> None:
    """Log an epoch record as one INFO line (rank 0), e.g. ``bind epoch 3/8: 40 steps in 21.4 s
    (535.0 ms/step), loss 2.1034, data wait 4.1% of the time``."""
    if not dist.is_main():
        return
    stage = record["stage"].removesuffix("_epoch")
    steps, seconds = record["steps"], record["seconds"]
    loss = f", loss {record['loss']:.4f}" if "loss" in record else ""
    logger.info("%s epoch %d/%d: %d steps in %.1f s (%.1f ms/step)%s, data wait %.1f%% of the time",
                stage, record["epoch"], epochs, steps, seconds, seconds / max(1, steps) * 1000, loss,
                record["data_wait_share"] * 100)
