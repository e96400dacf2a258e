"""What binding computes once instead of every step: the frozen anchor's embeddings (through
the AnchorCache) and the encoder features of frozen, unaugmented towers."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from mmbind.binder import Binder
from mmbind.plugin.specs import ModalitySamples
from mmbind.recipe import BindConfig, Recipe
from mmbind.training.anchor_cache import ENCODE_BATCH_SIZE, AnchorCache
from mmbind.training.metrics import MetricsLog


def is_frozen(module: torch.nn.Module) -> bool:
    """True when no parameter of ``module`` is trained."""
    return not any(p.requires_grad for p in module.parameters())


def frozen_features(binder: Binder, recipe: Recipe, split: dict[str, ModalitySamples],
                    device: torch.device, progress: bool | None = None) -> dict[str, torch.Tensor]:
    """Encoder features of every training sample of the bound towers whose encoder is frozen
    and whose input is not augmented (e.g. a frozen pretrained text model): the same every
    epoch, so computed once (unless ``[bind] anchor_cache = false``); only their heads train."""
    if not recipe.bind.anchor_cache:
        return {}
    return {m: binder.encode(split[m].inputs, m, batch_size=ENCODE_BATCH_SIZE, output_value="features",
                             show_progress_bar=progress, convert_to_numpy=False).to(device)
            for m in recipe.bound if is_frozen(binder.encoders[m]) and not recipe.towers[m].augment}


def anchor_table(binder: Binder, cfg: BindConfig, samples: ModalitySamples, run_dir: Path, metrics: MetricsLog,
                 device: torch.device, progress: bool = False) -> torch.Tensor | None:
    """The frozen anchor's embedding of every training anchor sample, from the anchor cache
    (computed for samples it has not seen under this anchor, then reused every epoch), or None
    when the anchor runs on every batch (``anchor_cache = false``, or an augmented anchor input,
    which changes every epoch). Logs an ``anchor_cache`` record."""
    if not cfg.anchor_cache or cfg.augment_anchor:
        return None
    # [bind] anchor_cache_file is relative to the run folder; "" keeps the cache in memory
    cache = AnchorCache(run_dir / cfg.anchor_cache_file if cfg.anchor_cache_file else None)
    started = time.perf_counter()
    table = cache.embeddings(binder, samples.inputs, binder.anchor_modality, progress=progress)
    metrics.write({"stage": "anchor_cache", "computed": cache.last_computed, "hits": cache.last_hits,
                   "seconds": round(time.perf_counter() - started, 3)})
    return table.to(device)
