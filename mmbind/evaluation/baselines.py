"""Supervised upper bounds, so that a zero-shot number reads as a share of what labels reach.

Per modality, two baselines trained on the train split's labels:
- linear probe: logistic regression on the binder's own encoder features (frozen), its L2
  strength chosen on held-out training samples;
- same-size supervised encoder: the tower's encoder architecture built fresh through
  ``mmbind.create_encoder`` with the same options (and the same initial weights, packaged
  pretrained ones included), plus a linear classifier, trained with cross-entropy for a few
  epochs on CPU with the tower's train-time augmentation.
Both are capped at ``[eval] baseline_max_train`` training samples (class-balanced), and the
encoders' training at ``[eval] supervised_budget_seconds`` together and
``supervised_max_seconds`` each, to stay cheap. A supervised encoder's predictions are cached
on disk (baseline_cache.py): the same data, encoder and seed are not trained twice (one
stopped by its time cap is trained again only by a run that allows it more time).
"""
from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

import mmbind
from mmbind.evaluation.sampling import balanced_sample
from mmbind.progress import progress

if TYPE_CHECKING:
    from mmbind.binder import Binder
    from mmbind.evaluation.baseline_cache import BaselineCache
    from mmbind.plugin.specs import BindingData
    from mmbind.recipe import EvalConfig

log = logging.getLogger(__name__)

# A packaged pretrained encoder is fine-tuned at a tenth of the new classifier's learning rate,
# so that the first steps (driven by a random classifier) do not erase what it learned.
PRETRAINED_LR_FACTOR = 0.1
# Light regularisation, as for the anchor's pretraining: the baselines train only a few epochs.
WEIGHT_DECAY = 1e-4
PREDICT_BATCH = 128
PROGRESS_LOG_SECONDS = 30.0  # how often a supervised training logs its progress
# The probe's inverse L2 strengths tried: an untuned C = 1 underrates features with many
# dimensions (EfficientNet's 1280 on Fashion-MNIST), which would flatter the zero-shot ratio.
PROBE_C = (0.01, 0.1, 1.0, 10.0)
PROBE_HOLDOUT = 0.2  # share of the probe's samples held out to choose C
PROBE_MIN_PER_CLASS = 10  # fewer samples in a class: no hold-out, C = 1


def fit_linear_probe(features: np.ndarray, labels: Sequence[int], seed: int = 0) -> Any:
    """Standardise, then multinomial logistic regression (sklearn), its inverse L2 strength C
    chosen from PROBE_C on a held-out stratified fifth of the samples and the probe refit on all
    of them (CLIP's linear-probe protocol, on a coarser grid). Returns the fitted pipeline; its
    ``chosen_C`` attribute says which C won (1.0 untuned, when too few samples to hold any out)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(labels)

    def probe(c: float) -> Any:
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))

    chosen = 1.0
    counts = np.unique(labels, return_counts=True)[1]
    if counts.min() >= PROBE_MIN_PER_CLASS:
        fit_x, held_x, fit_y, held_y = train_test_split(features, labels, test_size=PROBE_HOLDOUT,
                                                        stratify=labels, random_state=seed)
        scores = {c: probe(c).fit(fit_x, fit_y).score(held_x, held_y) for c in PROBE_C}
        chosen = max(PROBE_C, key=lambda c: (scores[c], -abs(math.log10(c))))  # ties: nearest to C = 1
    fitted = probe(chosen).fit(features, labels)
    fitted.chosen_C = chosen
    return fitted


class _Classifier:
    """An encoder plus a linear layer on its features (built lazily to keep torch out of imports)."""

    @staticmethod
    def build(encoder, n_classes: int):
        import torch.nn as nn

        class Classifier(nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = encoder
                self.linear = nn.Linear(int(encoder.output_dim), n_classes)

            def forward(self, batch):
                return self.linear(self.encoder(batch))

        return Classifier()


def train_supervised_encoder(binder: "Binder", modality: str, inputs: Sequence[Any], labels: Sequence[int],
                             n_classes: int, epochs: int = 5, batch_size: int = 64, lr: float = 1e-3,
                             seed: int = 0, max_seconds: float | None = None) -> tuple[Any, dict[str, Any]]:
    """A fresh encoder of the tower's architecture + a linear classifier, trained with cross-entropy.

    Packaged pretrained encoders start from their pretrained weights (as the tower did) and get a
    10x smaller learning rate than the new classifier, so fine-tuning does not erase them.
    ``max_seconds`` caps the wall time (a large tower must not stall the main job); the returned
    info says how many steps ran and whether the cap stopped it.
    """
    import torch
    import torch.nn.functional as F

    from mmbind.binder import to_device

    tower = binder.config.towers[modality]
    torch.manual_seed(seed)
    encoder = mmbind.create_encoder(tower.encoder, **tower.options)
    model = _Classifier.build(encoder, n_classes)
    device = next(binder.parameters()).device
    model.to(device)
    encoder_lr = lr * PRETRAINED_LR_FACTOR if mmbind.get_encoder(tower.encoder).pretrained else lr
    optimizer = torch.optim.AdamW([
        {"params": [p for p in model.encoder.parameters() if p.requires_grad], "lr": encoder_lr},
        {"params": model.linear.parameters(), "lr": lr}], weight_decay=WEIGHT_DECAY)
    load = mmbind.get_modality(modality).load
    transform = binder.transform(modality, train=True)  # the tower's own augmentation and sizes
    if hasattr(transform, "precompute"):  # its deterministic part once per sample, not once per epoch
        fixed, finish = [transform.precompute(load(x)) for x in inputs], transform.finish
    else:
        fixed, finish = [load(x) for x in inputs], transform
    targets = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    def batches():  # the sample order of every epoch, drawn when the epoch starts
        for _ in range(epochs):
            order = torch.randperm(len(inputs), generator=generator).tolist()
            for begin in range(0, len(order), batch_size):
                yield order[begin:begin + batch_size]

    started, steps, stopped = time.perf_counter(), 0, False
    total = epochs * -(-len(inputs) // batch_size)
    logged = started
    model.train()
    for index in progress(batches(), total=total, desc=f"supervised {modality}", unit="step"):
        batch = binder.collate(modality, [finish(fixed[i]) for i in index])
        loss = F.cross_entropy(model(to_device(batch, device)), targets[index].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
        now = time.perf_counter()
        if now - logged > PROGRESS_LOG_SECONDS:  # a line now and then, also where no bar shows
            log.info("supervised %s: step %d/%d, %.0f s", modality, steps, total, now - started)
            logged = now
        if max_seconds is not None and now - started > max_seconds:
            stopped = True
            break
    model.eval()
    return model, {"steps": steps, "time_limited": stopped}


def predict(model: Any, binder: "Binder", modality: str, inputs: Sequence[Any],
            batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """Class predictions of a supervised model on raw inputs (eval transform)."""
    import torch

    from mmbind.binder import to_device

    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            batch = binder.prepare(inputs[start:start + batch_size], modality)
            out.append(model(to_device(batch, device)).argmax(dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def _reusable(stored: dict[str, Any], caps: dict[str, float]) -> bool:
    """A cached baseline serves this run unless the time cap stopped it and this run allows more
    time (a cap of 0 is none): a complete training is the same whatever the caps."""
    if not stored.get("time_limited"):
        return True
    more = lambda now, then: (now or math.inf) > (then or math.inf)  # noqa: E731
    return not any(more(caps[k], stored.get(k, 0.0)) for k in caps)


def supervised_baselines(binder: "Binder", data: "BindingData", present: dict[str, list[str]],
                         features: dict[tuple[str, str], np.ndarray], cfg: "EvalConfig",
                         seed: int = 0, cache: "BaselineCache | None" = None) -> dict[str, Any]:
    """Predictions of both baselines on every evaluated (split, modality).

    ``present`` maps each evaluated split to its modalities; ``features`` holds the encoder
    features of those samples (computed once by evaluate_run). Supervised encoders come from
    ``cache`` (default: the on-disk BaselineCache) when one was trained before on the same data,
    encoder and seed; the others share ``[eval] supervised_budget_seconds`` (each also capped at
    ``supervised_max_seconds``). Returns {"linear_probe": {(split, m): predictions},
    "supervised": {...}, "info": {m: {...}}}.
    """
    from mmbind.evaluation.baseline_cache import BaselineCache, baseline_key

    cache = cache if cache is not None else BaselineCache()
    out: dict[str, Any] = {"linear_probe": {}, "supervised": {}, "info": {}}
    train = data.splits.get("train", {})
    n_classes = len(data.class_names)
    settings = {"epochs": cfg.supervised_epochs, "batch_size": cfg.supervised_batch_size, "lr": cfg.supervised_lr}
    # the time caps a training ran under, kept with it: a stopped one is reused under caps no larger
    caps = {"budget_seconds": cfg.supervised_budget_seconds, "max_seconds": cfg.supervised_max_seconds}
    jobs = []
    for m in dict.fromkeys(m for ms in present.values() for m in ms):
        if m not in train or len(train[m]) == 0:
            out["info"][m] = {"skipped": "no training samples"}
            continue
        labels = np.asarray(train[m].labels)
        known = np.flatnonzero(labels >= 0)
        pick = known[balanced_sample(labels[known], cfg.baseline_max_train, seed)]
        if len(np.unique(labels[pick])) < 2:
            out["info"][m] = {"skipped": "fewer than two classes in the training labels"}
            continue
        inputs = [train[m].inputs[i] for i in pick]
        splits = [split for split, ms in present.items() if m in ms]
        key = None  # no supervised encoder to train: frozen in the binder, or no epochs asked for
        if not binder.config.towers[m].freeze_encoder and cfg.supervised_epochs > 0:
            key = baseline_key(m, binder.config.towers[m], inputs, labels[pick],
                               {split: list(data.splits[split][m].inputs) for split in splits},
                               n_classes, settings, seed)
        cached = cache.get(key) if key else None
        if cached is not None and not _reusable(cached[1], caps):
            cached = None  # stopped by a smaller time cap than this run's: this run may do better
        jobs.append((m, inputs, labels[pick], splits, key, cached))

    to_train = sum(1 for *_, key, cached in jobs if key and cached is None)
    budget = cfg.supervised_budget_seconds or None
    for m, inputs, labels, splits, key, cached in jobs:
        info: dict[str, Any] = {"train_samples": len(inputs)}
        started = time.perf_counter()
        log.info("baselines for %s: linear probe on %d samples", m, len(inputs))
        probe = fit_linear_probe(binder.encode(inputs, m, batch_size=64, output_value="features"), labels, seed)
        info["probe_seconds"] = round(time.perf_counter() - started, 1)
        info["probe_C"] = probe.chosen_C
        for split in splits:
            if (split, m) in features:
                out["linear_probe"][split, m] = probe.predict(features[split, m])

        tower = binder.config.towers[m]
        if tower.freeze_encoder:
            info["supervised_skipped"] = "encoder frozen in the binder: the linear probe is its bound"
        elif key is None:  # an untrained classifier would score chance and cost a full pass
            info["supervised_skipped"] = "[eval] supervised_epochs = 0: the linear probe is the bound"
        elif cached is not None:
            predictions, stored = cached
            out["supervised"].update({(split, m): predictions[split] for split in splits})
            info.update(stored, cached=True)
            log.info("baselines for %s: supervised %s from the cache (%s)", m, tower.encoder, cache.root)
        else:
            limit = cfg.supervised_max_seconds
            if budget is not None:
                limit = min(limit, max(0.0, budget) / to_train)
            log.info("baselines for %s: supervised %s, %d epochs on %d samples, at most %.0f s",
                     m, tower.encoder, cfg.supervised_epochs, len(inputs), limit)
            started = time.perf_counter()
            model, run = train_supervised_encoder(
                binder, m, inputs, labels, n_classes, epochs=cfg.supervised_epochs,
                batch_size=cfg.supervised_batch_size, lr=cfg.supervised_lr, seed=seed, max_seconds=limit)
            predictions = {split: predict(model, binder, m, list(data.splits[split][m].inputs)) for split in splits}
            out["supervised"].update({(split, m): predictions[split] for split in splits})
            run.update({"encoder": tower.encoder, "epochs": cfg.supervised_epochs,
                        "parameters": int(sum(p.numel() for p in model.encoder.parameters())),
                        # an encoder frozen by its own options (e.g. freeze=True) trains only the classifier
                        "trainable_parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
                        "supervised_seconds": round(time.perf_counter() - started, 1)})
            info.update(run, cached=False)
            if budget is not None:
                budget -= time.perf_counter() - started
            to_train -= 1
            if run["time_limited"]:
                log.warning("baselines for %s: the time cap stopped the supervised encoder after %d steps (raise "
                            "[eval] supervised_budget_seconds or --baseline-budget for a full one)", m, run["steps"])
            cache.put(key, predictions, {**run, **caps})
        out["info"][m] = info
    return out
