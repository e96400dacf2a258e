"""Trainer: anchor pretraining (optional), then binding each modality to the frozen anchor.

The parts, one job each: the run folder and checkpoints (checkpoints.py), metrics and the epoch
log (metrics.py), the epoch plan and each rank's share of it (plan.py), loading and collating
(data.py), the one epoch loop both stages run (loop.py), the stages themselves (pretrain.py,
bind.py) with the optimizer and schedule (optim.py) and what binding computes once
(features.py, anchor_cache.py).

Determinism: every epoch reseeds torch from (seed, epoch) and plans its batches from that seed,
and every batch's augmentation is seeded from the plan, so a run resumed from an epoch
checkpoint ends with the same weights as an uninterrupted one, with any number of workers.

Speed: the frozen anchor's embeddings come from an AnchorCache (computed once, reused every
epoch); data loads in persistent worker processes when ``[bind] num_workers`` > 0, which share
the recipe's ``threads`` with torch's intra-op threads (mmbind.threads); the time the step waits
for data is logged per epoch as ``data_wait_share``.

Distributed: launched by torchrun (WORLD_SIZE > 1) the trainer joins the process group, each
trainable tower (encoder + head) is wrapped in its own DistributedDataParallel, every rank takes
its share of a global batch of ``batch_size * world_size`` pairs, and the losses gather the
embeddings with their gradient, so the update equals one process's on the global batch.
Rank 0 writes checkpoints and metrics, and calls the run-event hooks (mmbind.tracking: the
recipe's ``[log] trackers`` and any plugin's).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from mmbind import distributed as dist
from mmbind.binder import Binder
from mmbind.errors import TrainingError
from mmbind.plugin.specs import BindingData, ModalitySamples, SampleStream
from mmbind.progress import bars_enabled
from mmbind.recipe import Recipe
from mmbind.threads import apply_threads
from mmbind.tracking import emit, tracking
from mmbind.training.bind import BindStage
from mmbind.training.checkpoints import ResumeState, RunFolder
from mmbind.training.loop import EpochLoop
from mmbind.training.metrics import MetricsLog
from mmbind.training.pretrain import PretrainStage

logger = logging.getLogger(__name__)


class Trainer:
    """Runs the stages of a recipe and writes checkpoints and metrics to the run folder.

    ``progress``: progress bars; None shows them when ``mmbind.progress`` would (a terminal,
    INFO shown), False never. Epoch summaries and warnings go to the "mmbind" logger.
    """

    def __init__(self, recipe: Recipe, data: BindingData | None = None, run_dir: str | Path | None = None,
                 progress: bool | None = None):
        self.recipe = recipe
        self.run = RunFolder(run_dir or recipe.run_dir)
        self.device = dist.init_from_env(recipe.device)  # joins torchrun's process group, if any
        threads = apply_threads(recipe.threads)
        logger.info("%d intra-op thread(s) and %d loader worker(s)", threads, recipe.bind.num_workers)
        self.bars = dist.is_main() and (bars_enabled() if progress is None else progress)
        started = time.perf_counter()
        self.data = data if data is not None else recipe.load_data()
        # wall seconds of each stage this trainer ran: data (loading or building), pretrain, bind
        self.timing: dict[str, float] = {"data_seconds": round(time.perf_counter() - started, 1)}
        self.train_split = training_split(self.data, recipe)
        self.metrics = MetricsLog(self.run.metrics_path)
        self.loop = EpochLoop(self.metrics, recipe.bind.num_workers, self.device, self.bars)

    def fit(self, resume: bool = False, overwrite: bool = False) -> Binder:
        """Pretrain the anchor if the recipe asks, bind every modality, save the final model.
        With ``resume``, continue from the run folder's last epoch checkpoint (if there is one).
        A run folder holding an earlier run is refused (RunFolderError) unless ``resume`` or
        ``overwrite``; with ``overwrite`` its files are kept until this run saves a checkpoint."""
        with self.run.lock():
            self.run.check_free(resume, overwrite)
            try:
                binder = self._fit(resume)
            except BaseException:
                self.run.restore_aside()
                raise
            self.run.drop_aside()
        return binder

    def _fit(self, resume: bool) -> Binder:
        torch.manual_seed(self.recipe.seed)
        checkpoint = self.run.last_checkpoint() if resume else None
        if resume and checkpoint is None:
            logger.warning("--resume: no checkpoint in %s; starting from scratch", self.run.checkpoint_dir)
        with self.metrics, tracking(self.recipe, self.run.path):
            started = time.perf_counter()
            if checkpoint is None:
                self.run.set_aside()
            emit("on_train_start", recipe=self.recipe, run_dir=self.run.path)
            if checkpoint is None:
                binder, state = self.new_binder(), None
            else:
                binder, state = self.run.load_checkpoint(checkpoint, self.device)
                apply_grad_checkpointing(binder, self.recipe)
                self.metrics.truncate(state.global_step)
            dist.barrier()  # no rank reads the run folder while rank 0 is still clearing it
            bind_started = time.perf_counter()
            self.timing["pretrain_seconds"] = round(bind_started - started, 1)  # model set-up included
            try:
                self.bind(binder, state)
            except TrainingError as error:
                last = self.run.last_checkpoint()
                kept = (f"the last good checkpoint, {last}, is kept (continue from it with --resume once the "
                        "cause is fixed, e.g. a lower learning rate)" if last else "no checkpoint had been saved")
                raise TrainingError(f"{error}; training stopped, {kept}") from None
        self.run.save_model(binder)
        self.timing["bind_seconds"] = round(time.perf_counter() - bind_started, 1)
        dist.barrier()
        return binder

    def new_binder(self) -> Binder:
        """A Binder built from the recipe, its anchor pretrained (if the recipe asks) and frozen."""
        binder = Binder(self.recipe.binder_config(), base=self.recipe.base or None).to(self.device)
        apply_grad_checkpointing(binder, self.recipe)
        if self.recipe.pretrain is not None:
            self.pretrain(binder)
        binder.freeze_anchor()
        return binder

    def pretrain(self, binder: Binder) -> None:
        """Stage 1: supervised pretraining of the binder's anchor (``[anchor.pretrain]``)."""
        stage = PretrainStage(self.recipe.pretrain, binder, self.train_split[self.recipe.anchor],
                              self.recipe.seed, self.device)
        self.loop.run(stage)

    def bind_stage(self, binder: Binder, state: ResumeState | None = None) -> BindStage:
        """Binding, set up on ``binder`` (its anchor frozen) and ready to step."""
        return BindStage(self.recipe, binder, self.train_split, self.device, self.metrics, self.run.path,
                         state=state, progress=self.bars)

    def bind(self, binder: Binder, state: ResumeState | None = None) -> BindStage:
        """Stage 2: bind every modality to the anchor, from ``state``'s epoch on; an epoch
        checkpoint after each epoch. Returns the stage (its losses, features, anchor table)."""
        stage = self.bind_stage(binder, state)

        def checkpoint(epochs_done: int, step_in_epoch: int) -> None:
            self.run.save_checkpoint(binder, stage.resume_state(epochs_done, step_in_epoch))
            self.run.drop_aside()  # something new exists: the replaced run can go

        self.loop.run(stage, stage.start_epoch, checkpoint, start_step=stage.start_step, rng_state=stage.rng_state,
                      checkpoint_every=self.recipe.bind.checkpoint_every)
        return stage


def training_split(data: BindingData, recipe: Recipe) -> dict[str, ModalitySamples | SampleStream]:
    """The dataset's "train" split; ValueError naming what is missing if it lacks it or a tower's
    samples, or if anchor pretraining would need a streamed anchor in memory."""
    if "train" not in data.splits:
        raise ValueError(f"dataset {recipe.dataset!r} has no 'train' split (it has {', '.join(data.splits)})")
    split = data.splits["train"]
    missing = [m for m in recipe.towers if m not in split]
    if missing:
        raise ValueError(f"dataset {recipe.dataset!r} has no training samples for {', '.join(missing)}")
    if recipe.pretrain is not None and isinstance(split[recipe.anchor], SampleStream):
        raise ValueError(f"dataset {recipe.dataset!r} streams {recipe.anchor!r}: [anchor.pretrain] needs the "
                         f"anchor's samples in memory; pretrain on an in-memory dataset, or drop [anchor.pretrain]")
    return split


def apply_grad_checkpointing(binder: Binder, recipe: Recipe) -> None:
    """Towers with ``options.grad_checkpointing = true`` recompute activations in backward; a
    tower whose encoder cannot is logged as a warning and trains without."""
    from mmbind.nn import set_grad_checkpointing

    for modality, tower in recipe.towers.items():
        if tower.options.get("grad_checkpointing"):
            if not set_grad_checkpointing(binder.encoders[modality], True):
                logger.warning("[modalities.%s] options.grad_checkpointing: encoder %r has no gradient "
                               "checkpointing support; ignored", modality, tower.encoder)
