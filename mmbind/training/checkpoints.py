"""The run folder: epoch checkpoints (written atomically, the last few kept), the resume state,
the final model and where metrics go.

Layout: ``checkpoints/epoch-NNNN/`` (a saved Binder plus ``trainer_state.pt``), ``model/`` (the
final Binder), ``metrics.jsonl``. Rank 0 alone writes.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, NamedTuple

import torch

from mmbind import distributed as dist
from mmbind.binder import Binder

STATE_NAME = "trainer_state.pt"
# Epoch checkpoints kept: the one a resume starts from, and the one before it as a fallback.
KEEP_CHECKPOINTS = 2


class ResumeState(NamedTuple):
    """What a checkpoint holds besides the Binder: where binding stopped and the state of its
    optimizer, schedule and loss parameters."""

    epoch: int  # epochs done
    global_step: int  # binding steps done
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    losses: dict[str, Any]
    world_size: int = 1  # processes of the run that wrote it


class RunFolder:
    """Paths and files of one training run."""

    def __init__(self, path: str | Path, keep: int = KEEP_CHECKPOINTS):
        self.path = Path(path)
        self.keep = keep

    @property
    def checkpoint_dir(self) -> Path:
        """Where the epoch checkpoints are."""
        return self.path / "checkpoints"

    @property
    def model_dir(self) -> Path:
        """Where the final model is saved."""
        return self.path / "model"

    @property
    def metrics_path(self) -> Path:
        """The run's metrics.jsonl."""
        return self.path / "metrics.jsonl"

    def last_checkpoint(self) -> Path | None:
        """The latest epoch checkpoint, or None."""
        found = sorted(self.checkpoint_dir.glob("epoch-*"))
        return found[-1] if found else None

    def clear(self) -> None:
        """Before a run from scratch: delete the checkpoints and metrics of an earlier run."""
        if dist.is_main() and self.path.exists():
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
            self.metrics_path.unlink(missing_ok=True)

    def save_checkpoint(self, binder: Binder, state: ResumeState) -> Path:
        """Write checkpoints/epoch-NNNN atomically (a temp folder renamed) after ``state.epoch``
        epochs; keep the last ``keep``."""
        target = self.checkpoint_dir / f"epoch-{state.epoch:04d}"
        if not dist.is_main():
            return target
        tmp = self.checkpoint_dir / f".tmp-epoch-{state.epoch:04d}"
        shutil.rmtree(tmp, ignore_errors=True)
        binder.save_pretrained(tmp)
        torch.save(state._asdict(), tmp / STATE_NAME)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        for old in sorted(self.checkpoint_dir.glob("epoch-*"))[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return target

    @staticmethod
    def load_checkpoint(checkpoint: Path, device: torch.device) -> tuple[Binder, ResumeState]:
        """The Binder and resume state of an epoch checkpoint."""
        binder = Binder.from_pretrained(checkpoint, device=device)
        state = torch.load(checkpoint / STATE_NAME, map_location="cpu", weights_only=True)
        return binder, ResumeState(**state)

    def save_model(self, binder: Binder) -> None:
        """Save the final model (rank 0)."""
        if dist.is_main():
            binder.save_pretrained(self.model_dir)
