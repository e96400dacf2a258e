"""Trainer: anchor pretraining (optional), then binding each modality to the frozen anchor.

Determinism: every epoch reseeds torch from (seed, epoch) and plans its batches from that seed,
and every batch's augmentation is seeded from the plan, so a run resumed from an epoch
checkpoint ends with the same weights as an uninterrupted one, with any number of workers.

Speed: the frozen anchor's embeddings come from an AnchorCache (computed once, reused every
epoch); data loads in persistent worker processes when ``[bind] num_workers`` > 0; the time the
step waits for data is logged per epoch as ``data_wait_share``.

Distributed: launched by torchrun (WORLD_SIZE > 1) the trainer joins the process group, each
trainable tower (encoder + head) is wrapped in its own DistributedDataParallel, every rank takes
its share of a global batch of ``batch_size * world_size`` pairs, and the losses gather the
embeddings with their gradient, so the update equals one process's on the global batch.
Rank 0 writes checkpoints and metrics.
"""
from __future__ import annotations

import json
import math
import random
import shutil
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import mmbind
from mmbind import distributed as dist
from mmbind.binder import Binder, to_device
from mmbind.training.gradcache import grad_cache_backward
from mmbind.pairing import pair_index
from mmbind.recipe import Recipe
from mmbind.plugin.specs import BindingData, ModalitySamples

STATE_NAME = "trainer_state.pt"
# Transformed inputs of towers without augmentation are kept (per loading process) up to this size.
INPUT_CACHE_BYTES = 1 << 30


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


class BindDataset(torch.utils.data.Dataset):
    """Items are (modality, sample index, anchor index, batch seed); returns transformed inputs.

    Inputs of towers that are not augmented are transformed once and kept (up to
    ``cache_bytes`` per loading process): their transform gives the same tensor every epoch.
    A batch is fetched with ``__getitems__``, which seeds torch, numpy and random from the
    batch's seed (and restores the caller's RNG state afterwards), so augmentation does not
    depend on which process loads the batch.
    """

    def __init__(self, binder: Binder, samples: dict[str, ModalitySamples], with_anchor_input: bool,
                 augment_anchor: bool = False, cache_bytes: int = INPUT_CACHE_BYTES,
                 precomputed: frozenset[str] = frozenset()):
        self.binder = binder
        self.precomputed = precomputed  # towers whose frozen encoder features the trainer holds
        self.samples = samples
        self.with_anchor_input = with_anchor_input
        towers = binder.config.towers
        self.augment = {m: (m != binder.anchor_modality or augment_anchor) and towers[m].augment
                        for m in samples}
        self.loaders = {m: mmbind.get_modality(m).load for m in samples}
        self.cache_bytes = cache_bytes
        self._inputs: dict[tuple[str, int], Any] = {}
        self._cached = 0

    def __len__(self) -> int:
        return sum(len(s) for s in self.samples.values())

    def _item(self, modality: str, index: int) -> Any:
        key = (modality, index)
        if key in self._inputs:
            return self._inputs[key]
        raw = self.loaders[modality](self.samples[modality].inputs[index])
        item = self.binder.transform(modality, train=self.augment[modality])(raw)
        if not self.augment[modality]:  # deterministic: transform once, reuse every epoch
            size = _nbytes(item)
            if self._cached + size <= self.cache_bytes:
                self._inputs[key] = item
                self._cached += size
        return item

    def __getitem__(self, item: tuple) -> tuple:
        modality, j, a = item[:3]
        anchor_input = self._item(self.binder.anchor_modality, a) if self.with_anchor_input else None
        inputs = None if modality in self.precomputed else self._item(modality, j)
        return modality, inputs, a, self.samples[modality].labels[j], anchor_input, j

    def __getitems__(self, items: list[tuple]) -> list[tuple]:
        # Per-sample transforms are many tiny tensor ops: one thread does them faster than a
        # team of OpenMP threads (which spin and wait on a busy machine). DataLoader workers
        # already run with one thread; this covers loading in the main process (num_workers=0).
        threads = torch.get_num_threads()
        saved = torch.get_rng_state(), np.random.get_state(), random.getstate()
        if items and len(items[0]) >= 4:
            seed = int(items[0][3])
            torch.default_generator.manual_seed(seed)
            np.random.seed(seed % 2**32)
            random.seed(seed)
        try:
            torch.set_num_threads(1)
            return [self[item] for item in items]
        finally:
            torch.set_num_threads(threads)
            torch.set_rng_state(saved[0])
            np.random.set_state(saved[1])
            random.setstate(saved[2])

    def collate(self, items: list[tuple]) -> dict[str, dict[str, Any]]:
        batch: dict[str, dict[str, Any]] = {}
        for modality in dict.fromkeys(item[0] for item in items):
            group = [item for item in items if item[0] == modality]
            batch[modality] = {
                "inputs": (None if modality in self.precomputed
                           else self.binder.collate(modality, [g[1] for g in group])),
                "index": torch.tensor([g[5] for g in group]),
                "anchor_index": torch.tensor([g[2] for g in group]),
                "labels": torch.tensor([g[3] for g in group]),
                "anchor_inputs": (self.binder.collate(self.binder.anchor_modality, [g[4] for g in group])
                                  if self.with_anchor_input else None),
            }
        return batch


def _nbytes(item: Any) -> int:
    if isinstance(item, torch.Tensor):
        return item.element_size() * item.nelement()
    if isinstance(item, np.ndarray):
        return item.nbytes
    if isinstance(item, dict):
        return sum(_nbytes(v) for v in item.values())
    if isinstance(item, (tuple, list)):
        return sum(_nbytes(v) for v in item)
    return len(item) if isinstance(item, (str, bytes)) else 64


def _prepare_one_thread(binder: Binder, inputs, modality: str) -> Any:
    """Binder.prepare with one torch thread (see BindDataset.__getitems__: per-sample
    transforms run faster that way)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return binder.prepare(inputs, modality)
    finally:
        torch.set_num_threads(threads)


class PlanSampler:
    """A batch sampler whose batches are replaced every epoch, so one DataLoader (and its
    persistent workers) serves the whole stage."""

    def __init__(self) -> None:
        self.batches: list[list[tuple]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class Tower(nn.Module):
    """One bound modality's trainable path, encoder -> head -> l2-normalise: the unit that
    DistributedDataParallel wraps (it shares its modules with the Binder)."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, inputs: Any) -> torch.Tensor:
        return F.normalize(self.head(self.encoder(inputs)), dim=-1)


class _PretrainNet(nn.Module):
    """The anchor encoder with its cosine classifiers (one module, so DDP can wrap it)."""

    def __init__(self, encoder: nn.Module, classifiers: nn.ModuleDict):
        super().__init__()
        self.encoder = encoder
        self.classifiers = classifiers

    def forward(self, inputs: Any) -> dict[str, torch.Tensor]:
        features = F.normalize(self.encoder(inputs), dim=-1)
        return {name: 16.0 * features @ F.normalize(head.weight, dim=-1).T
                for name, head in self.classifiers.items()}


class Trainer:
    """Runs the stages of a recipe and writes checkpoints and metrics to the run folder."""

    def __init__(self, recipe: Recipe, data: BindingData | None = None, run_dir: str | Path | None = None,
                 progress: bool = True):
        self.recipe = recipe
        self.run_dir = Path(run_dir or recipe.run_dir)
        self.device = dist.init_from_env(recipe.device)  # joins torchrun's process group, if any
        self.progress = progress and dist.is_main()
        self.data = data if data is not None else mmbind.load_dataset(recipe.dataset, **recipe.dataset_options)
        self._check_data()
        self.train_split = self.data.splits["train"]
        self.anchor = recipe.anchor
        self.cfg = recipe.bind
        self._metrics_file = None

    def _check_data(self) -> None:
        if "train" not in self.data.splits:
            raise ValueError(f"dataset {self.recipe.dataset!r} has no 'train' split "
                             f"(it has {', '.join(self.data.splits)})")
        missing = [m for m in self.recipe.towers if m not in self.data.splits["train"]]
        if missing:
            raise ValueError(f"dataset {self.recipe.dataset!r} has no training samples for {', '.join(missing)}")

    # --- paths --------------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def model_dir(self) -> Path:
        return self.run_dir / "model"

    @property
    def anchor_cache_path(self) -> Path | None:
        """The HDF5 file of the anchor cache ([bind] anchor_cache_file, relative to the run
        folder), or None for the in-memory cache."""
        name = self.cfg.anchor_cache_file
        return None if not name else self.run_dir / name

    def last_checkpoint(self) -> Path | None:
        found = sorted(self.checkpoint_dir.glob("epoch-*"))
        return found[-1] if found else None

    # --- the whole job -----------------------------------------------------------------------
    def fit(self, resume: bool = False) -> Binder:
        """Pretrain the anchor if the recipe asks, bind every modality, save the final model."""
        torch.manual_seed(self.recipe.seed)
        checkpoint = self.last_checkpoint() if resume else None
        if resume and checkpoint is None:
            warnings.warn(f"--resume: no checkpoint in {self.checkpoint_dir}; starting from scratch")
        if checkpoint is None:
            if dist.is_main() and self.run_dir.exists():
                shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
                (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)
            self.binder = Binder(self.recipe.binder_config()).to(self.device)
            self._apply_grad_checkpointing()
            if self.recipe.pretrain is not None:
                self.pretrain_anchor()
            self.binder.freeze_anchor()
            state = None
        else:
            self.binder = Binder.from_pretrained(checkpoint, device=self.device)
            self._apply_grad_checkpointing()
            state = torch.load(checkpoint / STATE_NAME, map_location="cpu", weights_only=True)
            self._truncate_metrics(state["global_step"])
        dist.barrier()  # no rank reads the run folder while rank 0 is still clearing it
        try:
            self.bind(state)
        finally:
            self._close_metrics()
        if dist.is_main():
            self.binder.save_pretrained(self.model_dir)
        dist.barrier()
        return self.binder

    def _apply_grad_checkpointing(self) -> None:
        """Towers with ``options.grad_checkpointing = true`` recompute activations in backward."""
        from mmbind.nn import set_grad_checkpointing

        for modality, tower in self.recipe.towers.items():
            if tower.options.get("grad_checkpointing"):
                if not set_grad_checkpointing(self.binder.encoders[modality], True):
                    warnings.warn(f"[modalities.{modality}] options.grad_checkpointing: encoder "
                                  f"{tower.encoder!r} has no gradient checkpointing support; ignored")

    # --- stage 1: anchor pretraining ---------------------------------------------------------
    def pretrain_anchor(self) -> None:
        """Supervised pretraining of the anchor on its class and on meta targets (e.g. colour),
        with cosine classifiers so that the space the other towers bind to is angular."""
        cfg = self.recipe.pretrain
        samples = self.train_split[self.anchor]
        targets = {"label": torch.tensor(list(samples.labels))}
        for name in cfg.targets:
            values = [str((m or {}).get(name)) for m in (samples.meta or [{}] * len(samples))]
            vocab = sorted(set(values))
            targets[name] = torch.tensor([vocab.index(v) for v in values])
        encoder = self.binder.encoders[self.anchor]
        classifiers = nn.ModuleDict({
            name: nn.Linear(self.binder.dim, int(t.max()) + 1, bias=False) for name, t in targets.items()
        }).to(self.device)
        net = dist.wrap(_PretrainNet(encoder, classifiers), self.device)
        params = [p for p in encoder.parameters() if p.requires_grad] + list(classifiers.parameters())
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
        dataset = BindDataset(self.binder, {self.anchor: samples}, with_anchor_input=False, augment_anchor=True)
        world = dist.world_size()
        size = cfg.batch_size * world
        steps = math.ceil(len(samples) / size)
        loader, sampler = self._loader(dataset)
        encoder.train()
        for epoch in range(cfg.epochs):
            torch.manual_seed(epoch_seed(self.recipe.seed, -1 - epoch))
            order = torch.randperm(len(samples))
            if world > 1:  # every rank needs a full share of the last batch: wrap around
                order = order.repeat(math.ceil(steps * size / len(order)))[:steps * size]
            seeds = torch.randint(0, 2**62, (steps,)).tolist()
            sampler.batches = [
                [(self.anchor, j, j, seeds[s] + dist.rank()) for j in order[s * size:(s + 1) * size].tolist()
                 [dist.rank()::world]] for s in range(steps)]
            meter = _EpochMeter()
            for batch in self._bar(meter.iterate(loader), steps, f"pretrain anchor {epoch + 1}/{cfg.epochs}"):
                part = batch[self.anchor]
                index = part["anchor_index"]
                logits = net(to_device(part["inputs"], self.device))
                loss = sum(F.cross_entropy(logits[name], targets[name][index].to(self.device))
                           for name in classifiers)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                value = dist.all_mean(loss.detach()).item()
                meter.step_done({"loss/anchor": value})
                self._log({"stage": "pretrain", "epoch": epoch + 1, "loss": value})
            self._end_epoch("pretrain", epoch, cfg.epochs, meter, None)
        del loader

    # --- stage 2: binding --------------------------------------------------------------------
    def _plan_epoch(self, epoch: int, pairs: dict[str, list[list[int]]], steps: int) -> list[list[tuple]]:
        """Per step, one batch per modality: each modality walks a seeded permutation of its
        samples (restarting when exhausted) and draws a random matching anchor for each.
        Items are (modality, sample, anchor, augmentation seed of the step on this rank)."""
        generator = torch.Generator().manual_seed(epoch_seed(self.recipe.seed, epoch))
        size = self.cfg.batch_size * dist.world_size()
        plan: list[list[tuple]] = [[] for _ in range(steps)]
        for modality in self.recipe.bound:
            matches = pairs[modality]
            usable = torch.tensor([j for j, m in enumerate(matches) if m])
            order = torch.cat([usable[torch.randperm(len(usable), generator=generator)]
                               for _ in range(math.ceil(steps * size / len(usable)))])
            picks = torch.randint(0, 2**31 - 1, (steps * size,), generator=generator).tolist()
            for step in range(steps):
                rows = order[step * size:(step + 1) * size].tolist()
                mine = rows[dist.rank()::dist.world_size()]  # this rank's share of the global batch
                plan[step].extend(
                    (modality, j, matches[j][picks[step * size + k] % len(matches[j])])
                    for k, j in zip(range(dist.rank(), size, dist.world_size()), mine))
        seeds = torch.randint(0, 2**62, (steps,), generator=generator).tolist()
        return [[(*item, seeds[step] + dist.rank()) for item in batch] for step, batch in enumerate(plan)]

    def _steps_per_epoch(self) -> int:
        if self.cfg.steps_per_epoch:
            return self.cfg.steps_per_epoch
        largest = max(len(self.train_split[m]) for m in self.recipe.bound)
        return max(1, math.ceil(largest / (self.cfg.batch_size * dist.world_size())))

    def anchor_embeddings(self) -> torch.Tensor | None:
        """The frozen anchor's embedding of every training anchor sample, from the anchor cache
        (computed for samples it has not seen under this anchor, then reused every epoch)."""
        if not self.cfg.anchor_cache or self.cfg.augment_anchor:
            return None  # an augmented anchor input changes every epoch: nothing to reuse
        from mmbind.training.anchor_cache import AnchorCache

        if getattr(self, "anchor_cache", None) is None or self.anchor_cache.path != self.anchor_cache_path:
            self.anchor_cache = AnchorCache(self.anchor_cache_path)
        samples = self.train_split[self.anchor]
        started = time.perf_counter()
        table = self.anchor_cache.embeddings(self.binder, samples.inputs, self.anchor, progress=self.progress)
        self._log({"stage": "anchor_cache", "computed": self.anchor_cache.last_computed,
                   "hits": self.anchor_cache.last_hits, "seconds": round(time.perf_counter() - started, 3)})
        return table.to(self.device)

    def frozen_features(self) -> dict[str, torch.Tensor]:
        """Encoder features of the towers whose encoder is frozen and whose input is not
        augmented (e.g. a frozen pretrained text model): the same every epoch, so computed
        once; only their heads train."""
        features = {}
        for m in self.recipe.bound:
            tower = self.recipe.towers[m]
            frozen = not any(p.requires_grad for p in self.binder.encoders[m].parameters())
            if frozen and not tower.augment and self.cfg.anchor_cache:
                encoder = self.binder.encoders[m].eval()
                inputs = self.train_split[m].inputs
                with torch.no_grad(), self.autocast:
                    features[m] = torch.cat([
                        encoder(to_device(_prepare_one_thread(self.binder, inputs[i:i + 256], m), self.device))
                        .float() for i in range(0, len(inputs), 256)])
        return features

    def setup_bind(self, state: dict | None = None) -> None:
        """Build the losses, optimizer, scheduler, the anchor cache and (under torchrun) the
        DDP-wrapped towers; after this, ``train_step`` can run on collated batches."""
        binder, cfg = self.binder, self.cfg
        self.losses = nn.ModuleDict({
            m: mmbind.create_loss(cfg.loss, **self.recipe.loss_options(m)) for m in self.recipe.bound}).to(self.device)
        params = [p for p in binder.parameters() if p.requires_grad] + list(self.losses.parameters())
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                            {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        total = max(1, self._steps_per_epoch() * cfg.epochs)
        schedule = lambda step: min(1.0, (step + 1) / max(1, cfg.warmup_steps)) * 0.5 * (
            1 + math.cos(math.pi * min(step, total) / total))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.losses.load_state_dict(state["losses"])
        self.autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16)
                         if cfg.precision == "bf16" else nullcontext())
        self.features = self.frozen_features()
        # a tower with precomputed encoder features trains its head alone (still l2-normalised)
        self.towers = {m: dist.wrap(Tower(nn.Identity() if m in self.features else binder.encoders[m],
                                          binder.heads[m]), self.device)
                       for m in self.recipe.bound}
        # temperatures and loss parameters live outside the DDP towers: averaged by hand
        self.shared_params = [binder.log_scales[m] for m in self.recipe.bound] + list(self.losses.parameters())
        self.cache = self.anchor_embeddings()

    def bind(self, state: dict | None) -> None:
        binder, cfg = self.binder, self.cfg
        pairs = {}
        for modality in self.recipe.bound:
            pairs[modality] = pair_index(self.train_split[self.anchor].keys, self.train_split[modality].keys)
            unpaired = sum(1 for m in pairs[modality] if not m)
            if unpaired == len(pairs[modality]):
                raise ValueError(f"no {modality!r} training sample pairs with any {self.anchor!r} sample: "
                                 f"check the dataset's keys")
            if unpaired:
                warnings.warn(f"{unpaired} {modality!r} training samples pair with no anchor and are skipped")
        self.setup_bind(state)
        steps = self._steps_per_epoch()
        start_epoch, global_step = (state["epoch"], state["global_step"]) if state is not None else (0, 0)

        dataset = BindDataset(binder, {m: self.train_split[m] for m in self.recipe.towers},
                              with_anchor_input=self.cache is None, augment_anchor=cfg.augment_anchor,
                              precomputed=frozenset(self.features))
        loader, sampler = self._loader(dataset)
        binder.train()
        for epoch in range(start_epoch, cfg.epochs):
            torch.manual_seed(epoch_seed(self.recipe.seed, epoch))
            sampler.batches = self._plan_epoch(epoch, pairs, steps)
            meter = _EpochMeter()
            bar = self._bar(meter.iterate(loader), steps, f"bind {epoch + 1}/{cfg.epochs}")
            for batch in bar:
                record = {"stage": "bind", "epoch": epoch + 1, "step": global_step + 1,
                          "lr": self.scheduler.get_last_lr()[0]}
                record.update(self.train_step(batch))
                global_step += 1
                meter.step_done(record)
                self._log(record)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{meter.mean_loss():.3f}")
            self._end_epoch("bind", epoch, cfg.epochs, meter, global_step)
            self.save_checkpoint(epoch + 1, global_step, self.optimizer, self.scheduler)
        del loader

    # --- one step ------------------------------------------------------------------------------
    def forward_backward(self, batch: dict[str, dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Losses of one batch (this rank's share), gradients accumulated into .grad.

        With ``accumulation_steps`` K > 1 each modality's batch runs as K micro-batches through
        GradCache, so the gradient is the full batch's (every negative kept)."""
        losses = {}
        for modality, part in batch.items():
            inputs = (self.features[modality][part["index"].to(self.device)] if modality in self.features
                      else to_device(part["inputs"], self.device))
            labels = part["labels"].to(self.device, non_blocking=True)
            anchor = self._anchor_features(part)
            scale = self.binder.logit_scale(modality)
            loss_fn = lambda other: self.losses[modality](anchor, other, scale, labels)
            if self.cfg.accumulation_steps > 1:
                losses[modality] = grad_cache_backward(self.towers[modality], inputs, loss_fn,
                                                       self.cfg.accumulation_steps, self.device, self.autocast)
            else:
                with self.autocast:
                    other = self.towers[modality](inputs).float()
                loss = loss_fn(other)
                loss.backward()
                losses[modality] = loss.detach()
        dist.average_gradients(self.shared_params)
        return losses

    def _anchor_features(self, part: dict[str, Any]) -> torch.Tensor:
        if self.cache is not None:
            return self.cache[part["anchor_index"].to(self.device)]
        with torch.no_grad(), self.autocast:
            return self.binder(to_device(part["anchor_inputs"], self.device), self.anchor).float()

    def train_step(self, batch: dict[str, dict[str, Any]]) -> dict[str, float]:
        """One optimizer step; returns the losses (averaged over ranks) and temperatures."""
        self.optimizer.zero_grad(set_to_none=True)
        losses = self.forward_backward(batch)
        self.optimizer.step()
        self.scheduler.step()
        self.binder.clamp_logit_scales()
        names = list(losses)
        # one device->host copy (and one collective) per step for everything logged
        values = dist.all_mean(torch.stack([losses[m].float() for m in names])).tolist()
        scales = torch.stack([self.binder.log_scales[m].detach() for m in names]).exp().tolist()
        record = {f"loss/{m}": v for m, v in zip(names, values)}
        record.update({f"temperature/{m}": 1.0 / s for m, s in zip(names, scales)})
        return record

    # --- checkpoints, metrics, loading -------------------------------------------------------
    def save_checkpoint(self, epoch: int, global_step: int, optimizer, scheduler, keep: int = 2) -> Path:
        """Write checkpoints/epoch-NNNN atomically (a temp folder renamed), keep the last ``keep``."""
        target = self.checkpoint_dir / f"epoch-{epoch:04d}"
        if not dist.is_main():
            return target
        tmp = self.checkpoint_dir / f".tmp-epoch-{epoch:04d}"
        shutil.rmtree(tmp, ignore_errors=True)
        self.binder.save_pretrained(tmp)
        torch.save({"epoch": epoch, "global_step": global_step, "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "losses": self.losses.state_dict(),
                    "world_size": dist.world_size()},
                   tmp / STATE_NAME)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        for old in sorted(self.checkpoint_dir.glob("epoch-*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        return target

    def _end_epoch(self, stage: str, epoch: int, epochs: int, meter: "_EpochMeter", global_step: int | None) -> None:
        record = {"stage": f"{stage}_epoch", "epoch": epoch + 1, "steps": meter.steps,
                  "seconds": round(meter.seconds, 4), "data_wait_share": round(meter.wait_share, 4)}
        if global_step is not None:
            record["step"] = global_step
        if meter.losses:
            record["loss"] = meter.mean_loss()
        self._log(record)
        if self.progress:
            loss = f", loss {record['loss']:.4f}" if "loss" in record else ""
            print(f"{stage} epoch {epoch + 1}/{epochs}: {meter.steps} steps in {meter.seconds:.1f} s "
                  f"({meter.seconds / max(1, meter.steps) * 1000:.1f} ms/step){loss}, "
                  f"data wait {meter.wait_share:.1%} of the time", flush=True)

    def _log(self, record: dict) -> None:
        if not dist.is_main():
            return
        if self._metrics_file is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._metrics_file = open(self.run_dir / "metrics.jsonl", "a", buffering=1)  # line-buffered
        self._metrics_file.write(json.dumps(record) + "\n")

    def _close_metrics(self) -> None:
        if self._metrics_file is not None:
            self._metrics_file.close()
            self._metrics_file = None

    def _truncate_metrics(self, global_step: int) -> None:
        """On resume, drop the records of the steps after the checkpoint (they are redone)."""
        path = self.run_dir / "metrics.jsonl"
        if dist.is_main() and path.exists():
            def keep(record: dict) -> bool:
                if record.get("stage") in ("bind", "bind_epoch"):
                    return record["step"] <= global_step
                return record.get("stage") != "anchor_cache"  # the resumed run logs its own
            lines = [line for line in path.read_text().splitlines() if keep(json.loads(line))]
            path.write_text("".join(line + "\n" for line in lines))

    def _loader(self, dataset: BindDataset) -> tuple[torch.utils.data.DataLoader, PlanSampler]:
        """One DataLoader per stage; its batches are set per epoch through the PlanSampler."""
        workers = self.cfg.num_workers
        sampler = PlanSampler()
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, collate_fn=dataset.collate, num_workers=workers,
            pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
            prefetch_factor=4 if workers else None,
            generator=torch.Generator())  # its own: loading must not consume the model's RNG stream
        return loader, sampler

    def _bar(self, iterable, total: int, desc: str):
        if not self.progress:
            return iterable
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit="step", leave=False)


class _EpochMeter:
    """Wall time of an epoch's loop and the part of it spent blocked on the data loader."""

    def __init__(self) -> None:
        self.steps = 0
        self.wait = 0.0
        self.losses: list[float] = []
        self.started = time.perf_counter()
        self.ended: float | None = None

    def iterate(self, loader):
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

    def step_done(self, record: dict | None = None) -> None:
        self.steps += 1
        if record:
            values = [v for k, v in record.items() if k.startswith("loss/")]
            if values:
                self.losses.append(sum(values) / len(values))

    def mean_loss(self) -> float:
        return sum(self.losses) / max(1, len(self.losses))

    @property
    def seconds(self) -> float:
        return (self.ended or time.perf_counter()) - self.started

    @property
    def wait_share(self) -> float:
        return self.wait / self.seconds if self.seconds > 0 else 0.0
