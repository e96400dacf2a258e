"""Binder: a frozen anchor tower plus, per bound modality, an encoder and a projection head.

Every tower maps raw inputs to unit vectors in the anchor's space. Each bound modality has a
temperature, learnable (stored as ln(1/tau), clamped to [0, ln 100] as OpenCLIP does) or fixed
(as ImageBind does).
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import mmbind
from mmbind import progress
from mmbind.recipe.towers import BinderConfig, TowerConfig  # noqa: F401  (their home was here)

OutputValue = Literal["embedding", "features"]
OUTPUT_VALUES = ("embedding", "features", None)
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MAX_LOGIT_SCALE = math.log(100.0)


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
    """Towers that map every modality into the anchor's embedding space.

    ``base``: a binder folder this one is made from (an imported ImageBind, say): the towers it
    shares with the base get the base's weights, and ``save_pretrained`` writes only what
    differs from them, beside a reference to the base (see ``mmbind.derived``)."""

    def __init__(self, config: BinderConfig, pretrained: bool = True, base: str | Path | None = None):
        from mmbind import derived
        from mmbind.finetune import apply_tuning

        super().__init__()
        self.config = config
        self.encoders = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        self.log_scales = nn.ParameterDict()
        self.base = None if base is None else Path(base)
        self.base_reference: dict[str, str] | None = None  # the base's folder and hash, made on first save
        from_base = [] if base is None else [m for m in derived.read_config(base)["towers"] if m in config.towers]
        anchor = config.anchor
        # a tower the base has is built without pretrained weights: the base's are loaded below
        build = lambda m: _build_encoder(config.towers[m].encoder, config.towers[m].options,  # noqa: E731
                                         pretrained and m not in from_base)
        self.encoders[anchor] = build(anchor)
        self.dim = int(self.encoders[anchor].output_dim)
        for modality, tower in config.towers.items():  # encoder, head, scale: the order seeds see
            if modality != anchor:
                self.encoders[modality] = build(modality)
            head = "none" if modality == anchor else tower.head
            self.heads[modality] = _build_head(head, int(self.encoders[modality].output_dim), self.dim)
            self.log_scales[modality] = nn.Parameter(
                torch.tensor(math.log(1.0 / tower.temperature)),
                requires_grad=tower.learn_temperature and modality != anchor)
            apply_tuning(self.encoders[modality], tower, modality)
        # the shared projection starts as the identity: at step 0 the space is the anchor's own
        self.projection = nn.Linear(self.dim, self.dim, bias=False) if config.shared_projection else None
        if self.projection is not None:
            nn.init.eye_(self.projection.weight)
        self.from_base = derived.load_base(self, self.base, from_base) if from_base else set()
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
        from mmbind.finetune import eval_frozen_parts

        if self.anchor_frozen:
            self.encoders[self.anchor_modality].eval()
        for encoder in self.encoders.values():  # frozen parts keep their normalisation statistics
            eval_frozen_parts(encoder)
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
    def forward(self, batch: Any, modality: str, normalize: bool = True, project: bool = True) -> torch.Tensor:
        """A collated batch -> its embeddings: encoder, head, the shared projection, then l2-normalise."""
        return self.embed_features(self.encoders[modality](batch), modality, normalize, project)

    def embed_features(self, features: torch.Tensor, modality: str, normalize: bool = True,
                       project: bool = True) -> torch.Tensor:
        """Encoder features -> embeddings: the head, then (a binder with one, unless ``project``
        is False) the shared projection of the unit vector, then l2-normalise."""
        embeddings = self.heads[modality](features)
        if project and self.projection is not None:
            embeddings = self.projection(F.normalize(embeddings, dim=-1))
        return F.normalize(embeddings, dim=-1) if normalize else embeddings

    def project(self, units: torch.Tensor) -> torch.Tensor:
        """Unit embeddings of the towers (``project=False``) -> the binder's space: through the
        shared projection and l2-normalised again; unchanged without a shared projection."""
        return units if self.projection is None else F.normalize(self.projection(units), dim=-1)

    def transform(self, modality: str, train: bool = False) -> Callable[[Any], Any]:
        """The modality's transform with the sizes this binder was trained with."""
        key = (modality, train)
        if key not in self._transforms:
            tower = self.config.towers[modality]
            self._transforms[key] = mmbind.get_modality(modality).transform(
                train=train and tower.augment, **tower.preprocess)
        return self._transforms[key]

    def collate(self, modality: str, items: list) -> Any:
        """Batch transformed samples for the modality's tower (its encoder tokenises here, if it does)."""
        from mmbind.plugin.specs import collate_batch

        return collate_batch(items, mmbind.get_modality(modality), self.encoders[modality])

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
        project: bool = True,
    ) -> Any:
        """Embed raw inputs or file paths of one modality (sentence-transformers' ``encode``).

        ``output_value``: "embedding" (N, dim), unit rows unless ``normalize=False``; "features"
        the encoder's output before the head (N, output_dim); None both, as a dict
        {"embedding": ..., "features": ...} from one pass. ``device``: "auto", "cpu", "cuda[:N]",
        "mps" or None (where the binder is; otherwise the binder moves there). ``precision``:
        fp32, bf16 or fp16 (autocast); results are float32 either way. Returns numpy arrays, or
        tensors on the CPU with ``convert_to_tensor=True`` (or ``convert_to_numpy=False``).
        ``project=False`` leaves out a shared projection (the tower's own unit embeddings: what
        the anchor cache keeps, since the projection changes while binding).
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
                embedding = (self.embed_features(features, modality, normalize, project) if "embedding" in outputs
                             else None)
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
    def fingerprint(self, modality: str | None = None, project: bool = True) -> str:
        """A hash of the configuration and weights (of one tower when ``modality`` is given,
        with the shared projection its embeddings pass through unless ``project`` is False)."""
        digest = hashlib.sha256()
        config = self.config.to_dict()
        config.pop("mmbind_version")
        prefixes: tuple[str, ...] | None = None
        if modality is not None:
            prefixes = (f"encoders.{modality}.", f"heads.{modality}.")
            config = {"tower": config["towers"][modality]}
            if project and self.projection is not None:
                config["shared_projection"] = True
                prefixes = (*prefixes, "projection.")
        digest.update(json.dumps(config, sort_keys=True).encode())
        for name, tensor in sorted(self.state_dict().items()):
            if prefixes is None or name.startswith(prefixes):
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config.json and model.safetensors (transformers layout). A binder with a base
        writes only the tensors that differ from the base's, and a reference to the base."""
        from safetensors.torch import save_file, save_model

        from mmbind import derived

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = self.config.to_dict()
        config["dim"] = self.dim
        config["anchor_frozen"] = self.anchor_frozen
        if self.base is not None:
            self.base_reference = self.base_reference or derived.reference(self.base)
            config["base"] = self.base_reference
        (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        if self.base is None:
            save_model(self, str(directory / WEIGHTS_NAME), force_contiguous=True)  # e.g. channels-last convs
        else:
            save_file(derived.differing(self.state_dict(), self.base), str(directory / WEIGHTS_NAME),
                      metadata={"format": "pt"})
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device | None = None,
                        base: str | Path | None = None) -> "Binder":
        """Rebuild a binder saved by save_pretrained; no pretrained weights are fetched again.
        A binder made from a base loads the base's weights first (from the recorded folder, or
        ``base`` if given; either must be the very base it was made from)."""
        from mmbind import derived
        from mmbind.errors import CheckpointError
        from mmbind.weights import load_safetensors_into

        directory = Path(directory)
        data = derived.read_config(directory)
        try:
            config = BinderConfig.from_dict(data)
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{directory / CONFIG_NAME}: not a binder config ({type(error).__name__}: {error}); "
                                  f"expected the config.json written by Binder.save_pretrained") from None
        if "base" not in data:
            binder = cls(config, pretrained=False)
            load_safetensors_into(binder, directory / WEIGHTS_NAME)
        else:
            found = derived.resolve(data["base"], directory, base)
            binder = cls(config, pretrained=False, base=found)
            binder.base_reference = {"path": str(found.resolve()), "sha256": data["base"]["sha256"]}
            derived.load_own(binder, directory / WEIGHTS_NAME, binder.from_base)
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
