"""Binder: a frozen anchor tower plus, per bound modality, an encoder and a projection head.

Every tower maps raw inputs to unit vectors in the anchor's space. Each bound modality has a
temperature, learnable (stored as ln(1/tau), clamped to [0, ln 100] as OpenCLIP does) or fixed
(as ImageBind does).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import mmbind
from mmbind import progress

OutputValue = Literal["embedding", "features"]
OUTPUT_VALUES = ("embedding", "features", None)
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MAX_LOGIT_SCALE = math.log(100.0)


@dataclass
class TowerConfig:
    """One modality's tower: which encoder, its options, the eval/train transform sizes, the head."""

    encoder: str
    options: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    head: str = "linear"  # "linear", "mlp" or "none" (the anchor's embedding is its encoder output)
    temperature: float = 0.07
    learn_temperature: bool = True
    freeze_encoder: bool = False
    augment: bool = True
    loss_options: dict[str, Any] = field(default_factory=dict)  # over [bind] loss_options, this tower only


@dataclass
class BinderConfig:
    anchor: str
    towers: dict[str, TowerConfig]

    def to_dict(self) -> dict[str, Any]:
        return {"mmbind_version": mmbind.__version__, "anchor": self.anchor,
                "towers": {m: asdict(t) for m, t in self.towers.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BinderConfig":
        return cls(data["anchor"], {m: TowerConfig(**t) for m, t in data["towers"].items()})


def _build_encoder(name: str, options: dict[str, Any], pretrained: bool) -> nn.Module:
    spec = mmbind.get_encoder(name)
    if not pretrained and (spec.pretrained or "pretrained" in options):
        options = {**options, "pretrained": False}  # rebuilding: the saved weights follow
    elif spec.pretrained:
        options = {"pretrained": True, **options}
    return spec.factory(**options)


def _build_head(kind: str, in_dim: int, dim: int) -> nn.Module:
    if kind == "none":
        if in_dim != dim:
            raise ValueError(f"head 'none' needs the encoder's output_dim ({in_dim}) to equal dim ({dim})")
        return nn.Identity()
    if kind == "linear":
        return nn.Linear(in_dim, dim)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
    raise ValueError(f"unknown head {kind!r}; expected 'linear', 'mlp' or 'none'")


class Binder(nn.Module):
    """Towers that map every modality into the anchor's embedding space."""

    def __init__(self, config: BinderConfig, pretrained: bool = True):
        super().__init__()
        self.config = config
        self.encoders = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        self.log_scales = nn.ParameterDict()
        anchor_cfg = config.towers[config.anchor]
        self.encoders[config.anchor] = _build_encoder(anchor_cfg.encoder, anchor_cfg.options, pretrained)
        self.dim = int(self.encoders[config.anchor].output_dim)
        for modality, tower in config.towers.items():
            if modality != config.anchor:
                self.encoders[modality] = _build_encoder(tower.encoder, tower.options, pretrained)
            head = "none" if modality == config.anchor else tower.head
            self.heads[modality] = _build_head(head, int(self.encoders[modality].output_dim), self.dim)
            self.log_scales[modality] = nn.Parameter(
                torch.tensor(math.log(1.0 / tower.temperature)),
                requires_grad=tower.learn_temperature and modality != config.anchor)
            if tower.freeze_encoder:
                self.encoders[modality].requires_grad_(False)
        self.anchor_frozen = False
        self._transforms: dict[tuple[str, bool], Any] = {}

    # --- structure -------------------------------------------------------------------------
    @property
    def anchor_modality(self) -> str:
        return self.config.anchor

    @property
    def modalities(self) -> list[str]:
        return list(self.config.towers)

    @property
    def bound_modalities(self) -> list[str]:
        return [m for m in self.config.towers if m != self.config.anchor]

    def freeze_anchor(self) -> None:
        """Freeze the anchor tower: no gradients, and always in eval mode (BatchNorm stats fixed)."""
        self.encoders[self.anchor_modality].requires_grad_(False)
        self.encoders[self.anchor_modality].eval()
        self.anchor_frozen = True

    def train(self, mode: bool = True) -> "Binder":
        super().train(mode)
        if self.anchor_frozen:
            self.encoders[self.anchor_modality].eval()
        for modality, tower in self.config.towers.items():
            if tower.freeze_encoder:  # frozen encoders keep their normalisation statistics too
                self.encoders[modality].eval()
        return self

    def logit_scale(self, modality: str) -> torch.Tensor:
        return self.log_scales[modality].exp()

    def temperature(self, modality: str) -> float:
        return float(1.0 / self.logit_scale(modality).detach())

    def clamp_logit_scales(self) -> None:
        with torch.no_grad():
            for p in self.log_scales.values():
                p.clamp_(0.0, MAX_LOGIT_SCALE)

    # --- embedding -------------------------------------------------------------------------
    def forward(self, batch: Any, modality: str, normalize: bool = True) -> torch.Tensor:
        """A collated batch -> its embeddings: encoder, head, then l2-normalise."""
        return self.embed_features(self.encoders[modality](batch), modality, normalize)

    def embed_features(self, features: torch.Tensor, modality: str, normalize: bool = True) -> torch.Tensor:
        """Encoder features -> embeddings (the head, then l2-normalise)."""
        embeddings = self.heads[modality](features)
        return F.normalize(embeddings, dim=-1) if normalize else embeddings

    def transform(self, modality: str, train: bool = False) -> Callable[[Any], Any]:
        """The modality's transform with the sizes this binder was trained with."""
        key = (modality, train)
        if key not in self._transforms:
            tower = self.config.towers[modality]
            self._transforms[key] = mmbind.get_modality(modality).transform(
                train=train and tower.augment, **tower.preprocess)
        return self._transforms[key]

    def collate(self, modality: str, items: list) -> Any:
        collate = mmbind.get_modality(modality).collate
        return collate(items) if collate is not None else torch.stack(items)

    def prepare(self, inputs: Sequence[Any], modality: str, train: bool = False) -> Any:
        """Load, transform and collate raw inputs (paths, arrays, strings) into one batch."""
        spec = mmbind.get_modality(modality)
        transform = self.transform(modality, train)
        return self.collate(modality, [transform(spec.load(x)) for x in inputs])

    @torch.no_grad()
    def encode(
        self,
        inputs: Iterable[Any],
        modality: str,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: OutputValue | None = "embedding",
        normalize: bool = True,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
    ) -> Any:
        """Embed raw inputs or file paths of one modality (sentence-transformers' ``encode``).

        ``output_value``: "embedding" (N, dim), unit rows unless ``normalize=False``; "features"
        the encoder's output before the head (N, output_dim); None both, as a dict
        {"embedding": ..., "features": ...} from one pass. ``device``: "auto", "cpu", "cuda[:N]",
        "mps" or None (where the binder is; otherwise the binder moves there). ``precision``:
        fp32, bf16 or fp16 (autocast); results are float32 either way. Returns numpy arrays, or
        tensors on the CPU with ``convert_to_tensor=True`` (or ``convert_to_numpy=False``).
        """
        from mmbind.devices import autocast, resolve_device

        if modality not in self.encoders:
            raise KeyError(f"this binder has no {modality!r} tower; it has {', '.join(self.modalities)}")
        if output_value not in OUTPUT_VALUES:
            raise ValueError(f"output_value must be one of {OUTPUT_VALUES}, got {output_value!r}")
        inputs = list(inputs)
        if device is not None:
            self.to(resolve_device(device))
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        wanted = ("embedding", "features") if output_value is None else (output_value,)
        outputs: dict[str, list[torch.Tensor]] = {name: [] for name in wanted}
        starts = range(0, len(inputs), batch_size)
        if show_progress_bar is None:
            show_progress_bar = len(inputs) > 50 * batch_size and progress.bars_enabled()
        for start in progress.progress(starts, total=len(starts), desc=f"encode {modality}", unit="batch",
                                       enabled=show_progress_bar):
            chunk = inputs[start:start + batch_size]
            with autocast(device, precision):
                features = self.encoders[modality](to_device(self.prepare(chunk, modality), device))
                embedding = self.embed_features(features, modality, normalize) if "embedding" in outputs else None
            _check_finite(embedding if embedding is not None else features, chunk, modality)
            if "features" in outputs:
                outputs["features"].append(features.float().cpu())
            if embedding is not None:
                # l2-normalised again in float32: a bf16 row is only unit to about 1e-2
                outputs["embedding"].append(F.normalize(embedding.float(), dim=-1).cpu() if normalize
                                            else embedding.float().cpu())
        self.train(was_training)
        width = {"embedding": self.dim, "features": int(self.encoders[modality].output_dim)}
        result = {name: torch.cat(chunks) if chunks else torch.empty(0, width[name])
                  for name, chunks in outputs.items()}
        if convert_to_numpy and not convert_to_tensor:
            result = {name: value.numpy() for name, value in result.items()}
        return result if output_value is None else result[output_value]

    def zero_shot(self, inputs: Iterable[Any], class_names: Sequence[str], *, modality: str,
                  templates: Sequence[str] = ("{}",), prompt_modality: str | None = None,
                  batch_size: int = 32) -> np.ndarray:
        """(N, C) class probabilities of ``inputs`` (of ``modality``) over ``class_names``, from
        the prompt tower's averaged prompts and its logit scale, OpenCLIP style (see
        ``mmbind.evaluation.zero_shot``). The prompt tower is the binder's language tower unless
        ``prompt_modality`` names one."""
        from mmbind.evaluation.zero_shot import zero_shot

        return zero_shot(self, list(inputs), class_names, templates=templates, modality=modality,
                         prompt_modality=prompt_modality, batch_size=batch_size)

    # --- identity and persistence ------------------------------------------------------------
    def fingerprint(self, modality: str | None = None) -> str:
        """A hash of the configuration and weights (of one tower when ``modality`` is given)."""
        digest = hashlib.sha256()
        config = self.config.to_dict()
        config.pop("mmbind_version")
        if modality is not None:
            config = {"tower": config["towers"][modality]}
        digest.update(json.dumps(config, sort_keys=True).encode())
        prefixes = None if modality is None else (f"encoders.{modality}.", f"heads.{modality}.")
        for name, tensor in sorted(self.state_dict().items()):
            if prefixes is None or name.startswith(prefixes):
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config.json and model.safetensors (transformers layout)."""
        from safetensors.torch import save_model

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = self.config.to_dict()
        config["dim"] = self.dim
        config["anchor_frozen"] = self.anchor_frozen
        (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        save_model(self, str(directory / WEIGHTS_NAME))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device | None = None) -> "Binder":
        """Rebuild a binder saved by save_pretrained; no pretrained weights are fetched again."""
        from mmbind.errors import CheckpointError
        from mmbind.weights import load_safetensors_into

        directory = Path(directory)
        config_path = directory / CONFIG_NAME
        if not config_path.is_file():
            raise CheckpointError(f"{config_path} not found: expected a folder written by Binder.save_pretrained")
        try:
            data = json.loads(config_path.read_text())
            config = BinderConfig.from_dict(data)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{config_path}: not a binder config ({type(error).__name__}: {error}); expected "
                                  f"the config.json written by Binder.save_pretrained") from None
        binder = cls(config, pretrained=False)
        load_safetensors_into(binder, directory / WEIGHTS_NAME)
        if data.get("anchor_frozen", True):
            binder.freeze_anchor()
        binder.eval()
        return binder.to(device) if device is not None else binder


def _check_finite(rows: torch.Tensor, inputs: Sequence[Any], modality: str) -> None:
    """A NaN or inf output row means an input the encoder cannot handle (values near the float32
    limit, say): name that input rather than let a NaN vector into a store or a search."""
    bad = (~torch.isfinite(rows).all(dim=1)).nonzero().flatten().tolist()
    if bad:
        x = inputs[bad[0]]
        path = mmbind.get_modality(modality).input_file(x)
        name = str(path) if path is not None else f"{modality} input of type {type(x).__name__}"
        raise mmbind.InputError(f"{name}: its {modality} embedding is not finite (NaN or inf) "
                                f"({len(bad)} such input(s) in its batch); expected values the encoder can "
                                f"handle: check for extreme magnitudes")


def to_device(batch: Any, device: torch.device) -> Any:
    """Move a collated batch (tensor, list of str, dict or tuple of tensors) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(to_device(v, device) for v in batch)
    return batch
