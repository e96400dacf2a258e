"""Stage 1 (optional): supervised pretraining of the anchor on its class and on meta targets
(e.g. colour), with cosine classifiers so that the space the other towers bind to is angular."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmbind import distributed as dist
from mmbind.binder import Binder, to_device
from mmbind.plugin.specs import ModalitySamples
from mmbind.recipe import PretrainConfig
from mmbind.training.data import Batch, BindDataset, PlanLoader
from mmbind.training.plan import PlanItem, epoch_seed, pretrain_plan

# Cosines lie in [-1, 1], too narrow a range of logits for a softmax to become confident; a fixed
# scale turns them into usable logits (normalised softmax: NormFace, CosFace).
COSINE_LOGIT_SCALE = 16.0
# Light weight decay, the usual value for supervised image pretraining (e.g. ResNets on ImageNet).
PRETRAIN_WEIGHT_DECAY = 1e-4


class CosineClassifiers(nn.Module):
    """The anchor encoder with one cosine classifier per target (one module, so DDP can wrap it):
    logits are the scaled cosines between the l2-normalised features and class weights."""

    def __init__(self, encoder: nn.Module, classifiers: nn.ModuleDict):
        super().__init__()
        self.encoder = encoder
        self.classifiers = classifiers

    def forward(self, inputs: Any) -> dict[str, torch.Tensor]:
        """Logits per target for a collated batch of anchor inputs."""
        features = F.normalize(self.encoder(inputs), dim=-1)
        return {name: COSINE_LOGIT_SCALE * features @ F.normalize(head.weight, dim=-1).T
                for name, head in self.classifiers.items()}


def class_targets(samples: ModalitySamples, meta_targets: list[str]) -> dict[str, torch.Tensor]:
    """Class indices per target: "label" (the samples' labels) and each meta field named in
    ``meta_targets`` (its values, as strings, numbered in sorted order)."""
    targets = {"label": torch.tensor(list(samples.labels))}
    for name in meta_targets:
        values = [str((m or {}).get(name)) for m in (samples.meta or [{}] * len(samples))]
        vocab = {v: i for i, v in enumerate(sorted(set(values)))}
        targets[name] = torch.tensor([vocab[v] for v in values])
    return targets


class PretrainStage:
    """Anchor pretraining as the epoch loop runs it: the classifiers, their optimizer and the
    anchor's dataset are built here; ``step`` trains on one batch."""

    name = "pretrain"

    def __init__(self, cfg: PretrainConfig, binder: Binder, samples: ModalitySamples, seed: int,
                 device: torch.device):
        self.epochs = cfg.epochs
        self.batch_size = cfg.batch_size
        self.run_seed = seed
        self.device = device
        self.modality = binder.anchor_modality
        self.samples = samples
        self.targets = class_targets(samples, cfg.targets)
        encoder = binder.encoders[self.modality]
        classifiers = nn.ModuleDict({
            name: nn.Linear(binder.dim, int(t.max()) + 1, bias=False) for name, t in self.targets.items()
        }).to(device)
        self.net = dist.wrap(CosineClassifiers(encoder, classifiers), device)
        params = [p for p in encoder.parameters() if p.requires_grad] + list(classifiers.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=PRETRAIN_WEIGHT_DECAY)
        self.dataset = BindDataset(binder, {self.modality: samples}, with_anchor_input=False, augment_anchor=True)
        encoder.train()

    def seed(self, epoch: int) -> int:
        """Pretraining epochs count down from -1, so they never share a seed with binding's."""
        return epoch_seed(self.run_seed, -1 - epoch)

    def loader(self, num_workers: int, device: torch.device) -> PlanLoader:
        """The loader of the anchor's samples, planned by ``plan``."""
        return PlanLoader(self.dataset, num_workers, device, self.plan)

    def plan(self, epoch: int) -> list[list[PlanItem]]:
        """A permutation of the anchor samples, drawn from torch's global stream (which the loop
        has just seeded with the epoch's seed)."""
        return pretrain_plan(self.modality, len(self.samples), self.batch_size, torch.default_generator)

    def step(self, batch: Batch, epoch: int) -> dict[str, Any]:
        """One optimizer step on the summed cross-entropy of every target; returns the step's
        record (its loss averaged over ranks)."""
        part = batch[self.modality]
        logits = self.net(to_device(part.inputs, self.device))
        loss = sum(F.cross_entropy(logits[name], target[part.index].to(self.device))
                   for name, target in self.targets.items())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"stage": "pretrain", "epoch": epoch + 1, "loss": dist.all_mean(loss.detach()).item()}

    def epoch_fields(self) -> dict[str, Any]:
        """Nothing: pretraining's epoch records carry no step count."""
        return {}
