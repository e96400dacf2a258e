"""Trainer: anchor pretraining (optional), then binding each modality to the frozen anchor.

Determinism: every epoch reseeds torch from (seed, epoch) and plans its batches from that seed,
so a run resumed from an epoch checkpoint ends with the same weights as an uninterrupted one.
"""
from __future__ import annotations

import json
import math
import shutil
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

import mmbind
from mmbind import distributed as dist
from mmbind.binder import Binder, to_device
from mmbind.pairing import pair_index
from mmbind.recipe import Recipe
from mmbind.specs import BindingData, ModalitySamples

STATE_NAME = "trainer_state.pt"


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


class BindDataset(torch.utils.data.Dataset):
    """Items are (modality, sample index, anchor index); returns transformed inputs."""

    def __init__(self, binder: Binder, samples: dict[str, ModalitySamples], with_anchor_input: bool,
                 augment_anchor: bool = False):
        self.binder = binder
        self.samples = samples
        self.with_anchor_input = with_anchor_input
        self.augment = {m: m != binder.anchor_modality or augment_anchor for m in samples}
        self.loaders = {m: mmbind.get_modality(m).load for m in samples}

    def __len__(self) -> int:
        return sum(len(s) for s in self.samples.values())

    def _item(self, modality: str, index: int) -> Any:
        raw = self.loaders[modality](self.samples[modality].inputs[index])
        return self.binder.transform(modality, train=self.augment[modality])(raw)

    def __getitem__(self, item: tuple[str, int, int]) -> tuple:
        modality, j, a = item
        anchor_input = self._item(self.binder.anchor_modality, a) if self.with_anchor_input else None
        return modality, self._item(modality, j), a, self.samples[modality].labels[j], anchor_input

    def collate(self, items: list[tuple]) -> dict[str, dict[str, Any]]:
        batch: dict[str, dict[str, Any]] = {}
        for modality in dict.fromkeys(item[0] for item in items):
            group = [item for item in items if item[0] == modality]
            batch[modality] = {
                "inputs": self.binder.collate(modality, [g[1] for g in group]),
                "anchor_index": torch.tensor([g[2] for g in group]),
                "labels": torch.tensor([g[3] for g in group]),
                "anchor_inputs": (self.binder.collate(self.binder.anchor_modality, [g[4] for g in group])
                                  if self.with_anchor_input else None),
            }
        return batch


class Trainer:
    """Runs the stages of a recipe and writes checkpoints and metrics to the run folder."""

    def __init__(self, recipe: Recipe, data: BindingData | None = None, run_dir: str | Path | None = None,
                 progress: bool = True):
        self.recipe = recipe
        self.run_dir = Path(run_dir or recipe.run_dir)
        self.progress = progress and dist.is_main()
        self.device = torch.device(recipe.device)
        self.data = data if data is not None else mmbind.load_dataset(recipe.dataset, **recipe.dataset_options)
        self._check_data()
        self.train_split = self.data.splits["train"]
        self.anchor = recipe.anchor
        self.cfg = recipe.bind

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
            if self.recipe.pretrain is not None:
                self.pretrain_anchor()
            self.binder.freeze_anchor()
            state = None
        else:
            self.binder = Binder.from_pretrained(checkpoint, device=self.device)
            state = torch.load(checkpoint / STATE_NAME, map_location="cpu", weights_only=True)
            self._truncate_metrics(state["global_step"])
        self.bind(state)
        if dist.is_main():
            self.binder.save_pretrained(self.model_dir)
        return self.binder

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
        params = [p for p in encoder.parameters() if p.requires_grad] + list(classifiers.parameters())
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
        dataset = BindDataset(self.binder, {self.anchor: samples}, with_anchor_input=False, augment_anchor=True)
        steps = math.ceil(len(samples) / cfg.batch_size)
        encoder.train()
        for epoch in range(cfg.epochs):
            torch.manual_seed(epoch_seed(self.recipe.seed, -1 - epoch))
            order = torch.randperm(len(samples)).tolist()
            batches = [[(self.anchor, j, j) for j in order[s * cfg.batch_size:(s + 1) * cfg.batch_size]]
                       for s in range(steps)]
            loader = self._loader(dataset, batches)
            bar = self._bar(loader, steps, f"pretrain anchor {epoch + 1}/{cfg.epochs}")
            for batch in bar:
                part = batch[self.anchor]
                index = part["anchor_index"]
                features = F.normalize(encoder(to_device(part["inputs"], self.device)), dim=-1)
                loss = sum(
                    F.cross_entropy(16.0 * features @ F.normalize(head.weight, dim=-1).T,
                                    targets[name][index].to(self.device))
                    for name, head in classifiers.items())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                self._log({"stage": "pretrain", "epoch": epoch + 1, "loss": loss.item()})
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{loss.item():.3f}")

    # --- stage 2: binding --------------------------------------------------------------------
    def _plan_epoch(self, epoch: int, pairs: dict[str, list[list[int]]], steps: int) -> list[list[tuple]]:
        """Per step, one batch per modality: each modality walks a seeded permutation of its
        samples (restarting when exhausted) and draws a random matching anchor for each."""
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
        return plan

    def _steps_per_epoch(self) -> int:
        if self.cfg.steps_per_epoch:
            return self.cfg.steps_per_epoch
        largest = max(len(self.train_split[m]) for m in self.recipe.bound)
        return max(1, math.ceil(largest / (self.cfg.batch_size * dist.world_size())))

    def anchor_embeddings(self) -> torch.Tensor | None:
        """The frozen anchor's embedding of every training anchor sample, computed once."""
        if not self.cfg.anchor_cache or self.cfg.augment_anchor:
            return None  # an augmented anchor input changes every epoch: nothing to reuse
        samples = self.train_split[self.anchor]
        return self.binder.encode(samples.inputs, self.anchor, batch_size=256, convert_to_numpy=False,
                                  show_progress_bar=self.progress).to(self.device)

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
        self.losses = nn.ModuleDict({
            m: mmbind.create_loss(cfg.loss, **cfg.loss_options) for m in self.recipe.bound}).to(self.device)
        params = [p for p in binder.parameters() if p.requires_grad] + list(self.losses.parameters())
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                       {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        steps = self._steps_per_epoch()
        total = max(1, steps * cfg.epochs)
        schedule = lambda step: min(1.0, (step + 1) / max(1, cfg.warmup_steps)) * 0.5 * (
            1 + math.cos(math.pi * min(step, total) / total))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        start_epoch, global_step = 0, 0
        if state is not None:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            self.losses.load_state_dict(state["losses"])
            start_epoch, global_step = state["epoch"], state["global_step"]

        cache = self.anchor_embeddings()
        dataset = BindDataset(binder, {m: self.train_split[m] for m in self.recipe.towers},
                              with_anchor_input=cache is None, augment_anchor=cfg.augment_anchor)
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16)
                    if cfg.precision == "bf16" else nullcontext())
        binder.train()
        for epoch in range(start_epoch, cfg.epochs):
            torch.manual_seed(epoch_seed(self.recipe.seed, epoch))
            loader = self._loader(dataset, self._plan_epoch(epoch, pairs, steps))
            bar = self._bar(loader, steps, f"bind {epoch + 1}/{cfg.epochs}")
            for batch in bar:
                optimizer.zero_grad(set_to_none=True)
                record = {"stage": "bind", "epoch": epoch + 1, "step": global_step + 1,
                          "lr": scheduler.get_last_lr()[0]}
                for modality, part in batch.items():
                    with autocast:
                        other = binder(to_device(part["inputs"], self.device), modality).float()
                        if cache is not None:
                            anchor = cache[part["anchor_index"].to(self.device)]
                        else:
                            with torch.no_grad():
                                anchor = binder(to_device(part["anchor_inputs"], self.device), self.anchor).float()
                    loss = self.losses[modality](anchor, other, binder.logit_scale(modality),
                                                 part["labels"].to(self.device))
                    loss.backward()
                    record[f"loss/{modality}"] = loss.item()
                    record[f"temperature/{modality}"] = binder.temperature(modality)
                optimizer.step()
                scheduler.step()
                binder.clamp_logit_scales()
                global_step += 1
                self._log(record)
                if hasattr(bar, "set_postfix"):
                    mean = sum(v for k, v in record.items() if k.startswith("loss/")) / len(batch)
                    bar.set_postfix(loss=f"{mean:.3f}")
            self.save_checkpoint(epoch + 1, global_step, optimizer, scheduler)

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
                    "scheduler": scheduler.state_dict(), "losses": self.losses.state_dict()},
                   tmp / STATE_NAME)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        for old in sorted(self.checkpoint_dir.glob("epoch-*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        return target

    def _log(self, record: dict) -> None:
        if dist.is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def _truncate_metrics(self, global_step: int) -> None:
        """On resume, drop the records of the steps after the checkpoint (they are redone)."""
        path = self.run_dir / "metrics.jsonl"
        if dist.is_main() and path.exists():
            keep = [line for line in path.read_text().splitlines()
                    if json.loads(line).get("stage") != "bind" or json.loads(line)["step"] <= global_step]
            path.write_text("".join(line + "\n" for line in keep))

    def _loader(self, dataset: BindDataset, batches: list[list[tuple]]):
        workers = self.cfg.num_workers
        return torch.utils.data.DataLoader(
            dataset, batch_sampler=batches, collate_fn=dataset.collate, num_workers=workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
            prefetch_factor=4 if workers else None)

    def _bar(self, iterable, total: int, desc: str):
        if not self.progress:
            return iterable
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit="step", leave=False)
