"""Stage 2: binding every bound tower to the frozen anchor.

``BindStage`` builds everything a binding step needs (losses, optimizer and schedule, the reused
anchor embeddings and frozen features, the DDP-wrapped towers), from scratch or from a resume
state, and runs one step on a collated batch. Its data is either in memory (a plan of indices,
data.py) or streamed from shards (stream.py); with streamed data the anchor cache is looked up
per batch by the anchor inputs' content hashes, in a file.

Precision (``[bind] precision``): fp32; bf16 autocast; fp16 autocast with a gradient scaler
(CUDA/MPS only).
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

import mmbind
from mmbind import distributed as dist
from mmbind.binder import Binder, to_device
from mmbind.devices import autocast
from mmbind.plugin.specs import ModalitySamples
from mmbind.recipe import Recipe
from mmbind.training.anchor_cache import AnchorCache
from mmbind.training.checkpoints import ResumeState
from mmbind.training.data import Batch, BindDataset, ModalityBatch, PlanLoader
from mmbind.training.features import anchor_table, frozen_features
from mmbind.training.gradcache import grad_cache_backward
from mmbind.training.metrics import MetricsLog
from mmbind.training.optim import adamw, warmup_cosine_schedule
from mmbind.training.plan import PlanItem, anchor_pairs, bind_plan, epoch_seed, steps_per_epoch
from mmbind.training.stream import StreamDataset, StreamLoader, StreamPlan, streamed_modalities

# Where streamed binding keeps its anchor cache when [bind] anchor_cache_file is not set
# (relative to the run folder): streamed data is too large for a table in memory.
STREAM_ANCHOR_CACHE = "anchor-cache.h5"


class Tower(nn.Module):
    """One bound modality's trainable path, encoder -> head -> l2-normalise: the unit that
    DistributedDataParallel wraps (it shares its modules with the Binder)."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, inputs: Any) -> torch.Tensor:
        """Unit embeddings of a collated batch (or of encoder features, with an Identity encoder)."""
        return F.normalize(self.head(self.encoder(inputs)), dim=-1)


class BindStage:
    """Binding as the epoch loop runs it. Built once the binder's anchor is frozen; with a
    ``state`` (from a checkpoint) it continues where that run stopped."""

    name = "bind"

    def __init__(self, recipe: Recipe, binder: Binder, split: dict[str, ModalitySamples], device: torch.device,
                 metrics: MetricsLog, run_dir: Path, state: ResumeState | None = None, progress: bool = False):
        cfg = self.cfg = recipe.bind
        self.binder = binder
        self.device = device
        self.run_seed = recipe.seed
        self.epochs = cfg.epochs
        self.streamed = streamed_modalities(split, recipe.bound)
        if self.streamed:
            self.stream_plan = StreamPlan.build({m: split[m] for m in recipe.bound}, cfg.batch_size,
                                                max(1, cfg.num_workers), cfg.steps_per_epoch)
            self.steps = self.stream_plan.steps
        else:
            self.pairs = anchor_pairs(split, recipe.anchor, recipe.bound)
            self.steps = steps_per_epoch(cfg.steps_per_epoch, [len(split[m]) for m in recipe.bound], cfg.batch_size)
        self.start_epoch, self.global_step = (state.epoch, state.global_step) if state is not None else (0, 0)
        self.start_step, self.rng_state = (state.step_in_epoch, state.rng_state) if state is not None else (0, None)

        self.losses = nn.ModuleDict({
            m: mmbind.create_loss(cfg.loss, **recipe.loss_options(m)) for m in recipe.bound}).to(device)
        # only the bound towers train (a base binder's other towers come along unchanged)
        projection = [] if binder.projection is None else list(binder.projection.parameters())
        bound = ({id(p) for m in recipe.bound for part in (binder.encoders[m], binder.heads[m])
                  for p in part.parameters()}
                 | {id(binder.log_scales[m]) for m in recipe.bound} | {id(p) for p in projection})
        self.optimizer = adamw([p for p in binder.parameters() if p.requires_grad and id(p) in bound]
                               + list(self.losses.parameters()), cfg.lr, cfg.weight_decay)
        self.scheduler = warmup_cosine_schedule(self.optimizer, cfg.warmup_steps, self.steps * cfg.epochs)
        if state is not None:
            self.optimizer.load_state_dict(state.optimizer)
            self.scheduler.load_state_dict(state.scheduler)
            self.losses.load_state_dict(state.losses)
        self.autocast: AbstractContextManager = autocast(device, cfg.precision)
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
        if state is not None and state.scaler:
            self.scaler.load_state_dict(state.scaler)

        self.features = ({} if self.streamed else
                         frozen_features(binder, recipe, split, device, progress=None if progress else False))
        # a tower with precomputed encoder features trains its head alone (still l2-normalised)
        self.towers = {m: dist.wrap(Tower(nn.Identity() if m in self.features else binder.encoders[m],
                                          binder.heads[m]), device)
                       for m in recipe.bound}
        # temperatures, loss parameters and the shared projection live outside the DDP towers:
        # averaged by hand
        self.shared_params = [binder.log_scales[m] for m in recipe.bound] + list(self.losses.parameters()) + projection
        self.anchor_cache: AnchorCache | None = None
        if self.streamed:
            self.anchor_table = None
            if cfg.anchor_cache and not cfg.augment_anchor:
                self.anchor_cache = AnchorCache(run_dir / (cfg.anchor_cache_file or STREAM_ANCHOR_CACHE), per_rank=True)
            augment = {m: (m != recipe.anchor or cfg.augment_anchor) and t.augment for m, t in recipe.towers.items()}
            self.dataset: BindDataset | StreamDataset = StreamDataset(binder, self.stream_plan, augment,
                                                                      hash_anchors=self.anchor_cache is not None)
        else:
            self.anchor_table = anchor_table(binder, cfg, split[recipe.anchor], run_dir, metrics, device, progress)
            self.dataset = BindDataset(binder, {m: split[m] for m in recipe.towers},
                                       with_anchor_input=self.anchor_table is None, augment_anchor=cfg.augment_anchor,
                                       precomputed=frozenset(self.features))
        binder.train()

    # --- the epoch loop's side --------------------------------------------------------------
    def seed(self, epoch: int) -> int:
        """The seed of binding epoch ``epoch`` (0-based): torch's and the plan's."""
        return epoch_seed(self.run_seed, epoch)

    def loader(self, num_workers: int, device: torch.device) -> PlanLoader | StreamLoader:
        """The loader of the binding data: the plan's items in memory, or the streamed shards."""
        if isinstance(self.dataset, StreamDataset):
            return StreamLoader(self.dataset, self.seed, num_workers, device)
        return PlanLoader(self.dataset, num_workers, device, self.plan)

    def plan(self, epoch: int) -> list[list[PlanItem]]:
        """This rank's items for every step of the epoch (data in memory)."""
        return bind_plan(self.pairs, self.steps, self.cfg.batch_size, self.seed(epoch))

    def step(self, batch: Batch, epoch: int) -> dict[str, Any]:
        """One optimizer step; returns its ``bind`` record."""
        record = {"stage": "bind", "epoch": epoch + 1, "step": self.global_step + 1,
                  "lr": self.scheduler.get_last_lr()[0]}
        record.update(self.train_step(batch))
        self.global_step += 1
        return record

    def epoch_fields(self) -> dict[str, Any]:
        """The step count so far: a resumed run truncates metrics by it."""
        return {"step": self.global_step}

    def resume_state(self, epochs_done: int, step_in_epoch: int = 0) -> ResumeState:
        """What a checkpoint after ``epochs_done`` epochs and ``step_in_epoch`` steps of the next
        must hold to continue from there."""
        return ResumeState(epochs_done, self.global_step, self.optimizer.state_dict(), self.scheduler.state_dict(),
                           self.losses.state_dict(), dist.world_size(), step_in_epoch,
                           torch.get_rng_state() if step_in_epoch else None,
                           self.scaler.state_dict() if self.scaler.is_enabled() else None)

    # --- one step -----------------------------------------------------------------------------
    def forward_backward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Losses of one batch (this rank's share), gradients accumulated into .grad.

        With ``accumulation_steps`` K > 1 each modality's batch runs as K micro-batches through
        GradCache, so the gradient is the full batch's (every negative kept)."""
        losses = {}
        for modality, part in batch.items():
            inputs = (self.features[modality][part.index.to(self.device)] if modality in self.features
                      else to_device(part.inputs, self.device))
            labels = part.labels.to(self.device, non_blocking=True)
            # the towers and the anchor cache give unit embeddings before a shared projection
            anchor = self.binder.project(self._anchor_embeddings(part))
            scale = self.binder.logit_scale(modality)
            loss_fn = lambda other: self.losses[modality](  # noqa: E731
                anchor, self.binder.project(other), scale, labels)
            if self.cfg.accumulation_steps > 1:
                losses[modality] = grad_cache_backward(self.towers[modality], inputs, loss_fn,
                                                       self.cfg.accumulation_steps, self.device, self.autocast,
                                                       self.scaler.scale)
            else:
                with self.autocast:
                    other = self.towers[modality](inputs).float()
                loss = loss_fn(other)
                self.scaler.scale(loss).backward()
                losses[modality] = loss.detach()
        dist.average_gradients(self.shared_params)
        return losses

    def _anchor_embeddings(self, part: ModalityBatch) -> torch.Tensor:
        if self.anchor_table is not None:
            return self.anchor_table[part.anchor_index.to(self.device)]
        if self.anchor_cache is not None and part.anchor_hashes is not None:
            rows = self.anchor_cache.batch(self.binder, part.anchor_hashes, lambda: self._run_anchor(part))
            return rows.to(self.device)
        return self._run_anchor(part)

    def _run_anchor(self, part: ModalityBatch) -> torch.Tensor:
        with torch.no_grad(), self.autocast:
            return self.binder(to_device(part.anchor_inputs, self.device), self.binder.anchor_modality,
                               project=False).float()

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One optimizer step; returns the losses (averaged over ranks) and temperatures."""
        self.optimizer.zero_grad(set_to_none=True)
        losses = self.forward_backward(batch)
        self.scaler.step(self.optimizer)  # a plain optimizer.step() unless fp16
        self.scaler.update()
        self.scheduler.step()
        self.binder.clamp_logit_scales()
        names = list(losses)
        # one device->host copy (and one collective) per step for everything logged
        values = dist.all_mean(torch.stack([losses[m].float() for m in names])).tolist()
        scales = torch.stack([self.binder.log_scales[m].detach() for m in names]).exp().tolist()
        record = {f"loss/{m}": v for m, v in zip(names, values)}
        record.update({f"temperature/{m}": 1.0 / s for m, s in zip(names, scales)})
        return record
