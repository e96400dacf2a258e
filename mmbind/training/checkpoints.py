"""The run folder: epoch checkpoints (written atomically, the last few kept), the resume state,
the final model and where metrics go.

Layout: ``checkpoints/epoch-NNNN/`` after NNNN epochs and ``checkpoints/epoch-NNNN-step-SSSSSS/``
SSSSSS steps into the next one (``[bind] checkpoint_every``), each a saved Binder plus
``trainer_state.pt`` (names sort in training order); ``model/`` (the final Binder),
``metrics.jsonl``, ``.lock`` while a process trains in it. Rank 0 alone writes.

Nothing of an earlier run is lost before something new exists: a run started over an earlier one
(``overwrite``) first moves its checkpoints, model and metrics into ``.previous/``, deletes them
once the new run has saved its first checkpoint, and moves them back if it fails before that.
"""
from __future__ import annotations

import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import torch

from mmbind import distributed as dist
from mmbind.binder import Binder
from mmbind.errors import RunFolderError
from mmbind.locking import FileLock

logger = logging.getLogger(__name__)

STATE_NAME = "trainer_state.pt"
# Epoch checkpoints kept: the one a resume starts from, and the one before it as a fallback.
KEEP_CHECKPOINTS = 2
ASIDE = ".previous"  # where an overwritten run waits until the new one has a checkpoint
_held: dict[Path, list[Any]] = {}  # run folders this process has locked: [lock, depth]


class ResumeState(NamedTuple):
    """What a checkpoint holds besides the Binder: where binding stopped and the state of its
    optimizer, schedule and loss parameters."""

    epoch: int  # epochs done
    global_step: int  # binding steps done
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    losses: dict[str, Any]
    world_size: int = 1  # processes of the run that wrote it
    step_in_epoch: int = 0  # steps done of epoch ``epoch`` (0-based), for a mid-epoch checkpoint
    rng_state: torch.Tensor | None = None  # torch's RNG state at that step (dropout draws from it)
    scaler: dict[str, Any] | None = None  # fp16's gradient scaler


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

    def _artefacts(self) -> list[Path]:
        return [self.checkpoint_dir, self.model_dir, self.metrics_path]

    def earlier_run(self) -> list[str]:
        """What an earlier run left here (checkpoints, model, metrics), as names for a message."""
        found = [f"{p.name}/" if p.is_dir() else p.name for p in self._artefacts()
                 if p.exists() and (p.is_dir() and any(p.iterdir()) or p.is_file() and p.stat().st_size)]
        last = self.last_checkpoint()
        return [f"checkpoints/{last.name}" if name == "checkpoints/" and last else name for name in found]

    def check_free(self, resume: bool, overwrite: bool) -> None:
        """RunFolderError if an earlier run is here and neither ``resume`` nor ``overwrite`` says
        what to do with it."""
        if resume or overwrite or not _writes_files():
            return  # other ranks: rank 0 may already be writing the new run's files
        earlier = self.earlier_run()
        if earlier:
            raise RunFolderError(
                f"{self.path} holds an earlier run ({', '.join(earlier)}): pass --resume to continue it, "
                "--overwrite to replace it (its files are kept until the new run saves its first "
                "checkpoint), or choose another run folder (--set output_dir=...)")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``<run>/.lock`` (rank 0): a second training process on this folder gets
        RunFolderError. Reentrant within a process (``mmbind run`` holds it over every stage)."""
        key = self.path.resolve()
        if not _writes_files() or key in _held:
            if key in _held:
                _held[key][1] += 1
            try:
                yield
            finally:
                if key in _held:
                    _held[key][1] -= 1
            return

        def busy(lock_path: Path, holder: str) -> RunFolderError:
            return RunFolderError(f"{self.path}: another process (pid {holder or 'unknown'}) is training in this "
                                  f"run folder (it holds {lock_path}); wait for it to finish, or give this run "
                                  "another run folder (--set output_dir=...)")

        lock = FileLock(self.path / ".lock", busy)
        lock.acquire()
        _held[key] = [lock, 0]
        try:
            yield
        finally:
            del _held[key]
            lock.release()

    def set_aside(self) -> None:
        """Before a run over an earlier one: move its checkpoints, model and metrics to ``.previous/``."""
        aside = self.path / ASIDE
        if not dist.is_main():
            return
        if aside.exists():  # an earlier replacement failed before its first checkpoint: aside is the real run
            for path in self._artefacts():
                _remove(path)
        else:
            moved = [p for p in self._artefacts() if p.exists()]
            if not moved:
                return
            aside.mkdir(parents=True)
            for path in moved:
                path.rename(aside / path.name)
        logger.warning("%s: the earlier run's files are in %s until this run saves its first checkpoint",
                       self.path, aside)

    def restore_aside(self) -> None:
        """The new run failed before its first checkpoint: put the earlier run back."""
        aside = self.path / ASIDE
        if not (dist.is_main() and aside.is_dir()):
            return
        for path in self._artefacts():
            _remove(path)
            if (aside / path.name).exists():
                (aside / path.name).rename(path)
        aside.rmdir()
        logger.warning("%s: this run stopped before its first checkpoint; the earlier run is back", self.path)

    def drop_aside(self) -> None:
        """The new run has a checkpoint: delete the earlier run set aside."""
        if dist.is_main():
            shutil.rmtree(self.path / ASIDE, ignore_errors=True)

    def save_checkpoint(self, binder: Binder, state: ResumeState) -> Path:
        """Write checkpoints/epoch-NNNN[-step-SSSSSS] atomically (a temp folder renamed) after
        ``state.epoch`` epochs and ``state.step_in_epoch`` steps; keep the last ``keep``."""
        name = f"epoch-{state.epoch:04d}" + (f"-step-{state.step_in_epoch:06d}" if state.step_in_epoch else "")
        target = self.checkpoint_dir / name
        if not dist.is_main():
            return target
        tmp = self.checkpoint_dir / f".tmp-{name}"
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


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _writes_files() -> bool:
    """Rank 0 (the one that writes the run folder), known from torchrun's RANK even before the
    process group is set up."""
    return dist.is_main() if dist.is_distributed() else int(os.environ.get("RANK", "0")) == 0
