"""Supervised upper bounds, so that a zero-shot number reads as a share of what labels reach.

Per modality, two baselines trained on the train split's labels:
- linear probe: logistic regression on the binder's own encoder features (frozen);
- same-size supervised encoder: the tower's encoder architecture built fresh through
  ``mmbind.create_encoder`` with the same options (and the same initial weights, packaged
  pretrained ones included), plus a linear classifier, trained with cross-entropy for a few
  epochs on CPU with the tower's train-time augmentation.
Both are capped at ``baseline_max_train`` training samples (class-balanced), and the encoder's
training at ``supervised_max_seconds``, to stay cheap. Those knobs are read from the recipe's
[eval] table when it has them, else the DEFAULTS below.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

import mmbind

DEFAULTS = {
    "supervised_epochs": 5,
    "supervised_batch_size": 64,
    "supervised_lr": 1e-3,
    "baseline_max_train": 2000,
    "supervised_max_seconds": 300.0,
}


def _option(cfg: Any, name: str) -> Any:
    return getattr(cfg, name, DEFAULTS[name]) if cfg is not None else DEFAULTS[name]


def encoder_features(binder, inputs: Sequence[Any], modality: str, batch_size: int = 64) -> np.ndarray:
    """The modality encoder's output (before the projection head), eval mode, no gradients."""
    import torch

    from mmbind.binder import to_device

    device = next(binder.parameters()).device
    encoder = binder.encoders[modality]
    was_training = encoder.training
    encoder.eval()
    chunks = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            batch = to_device(binder.prepare(inputs[start:start + batch_size], modality), device)
            chunks.append(encoder(batch).float().cpu())
    encoder.train(was_training)
    return torch.cat(chunks).numpy()


def fit_linear_probe(features: np.ndarray, labels: Sequence[int], seed: int = 0):
    """Standardise, then multinomial logistic regression (sklearn); returns the fitted pipeline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    return probe.fit(features, np.asarray(labels))


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


def train_supervised_encoder(binder, modality: str, inputs: Sequence[Any], labels: Sequence[int],
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
    encoder_lr = lr * 0.1 if mmbind.get_encoder(tower.encoder).pretrained else lr
    optimizer = torch.optim.AdamW([
        {"params": [p for p in model.encoder.parameters() if p.requires_grad], "lr": encoder_lr},
        {"params": model.linear.parameters(), "lr": lr}], weight_decay=1e-4)
    load = mmbind.get_modality(modality).load
    transform = binder.transform(modality, train=True)  # the tower's own augmentation and sizes
    targets = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    started, steps, stopped = time.perf_counter(), 0, False
    model.train()
    for _ in range(epochs):
        if stopped:
            break
        order = torch.randperm(len(inputs), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            batch = binder.collate(modality, [transform(load(inputs[i])) for i in index])
            loss = F.cross_entropy(model(to_device(batch, device)), targets[index].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            if max_seconds is not None and time.perf_counter() - started > max_seconds:
                stopped = True
                break
    model.eval()
    return model, {"steps": steps, "time_limited": stopped}


def predict(model, binder, modality: str, inputs: Sequence[Any], batch_size: int = 128) -> np.ndarray:
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


def supervised_baselines(binder, data, present: dict[str, list[str]],
                         features: dict[tuple[str, str], np.ndarray], seed: int = 0,
                         cfg: Any = None) -> dict[str, Any]:
    """Predictions of both baselines on every evaluated (split, modality).

    ``present`` maps each evaluated split to its modalities; ``features`` holds the encoder
    features of those samples (computed once by evaluate_run). Returns
    {"linear_probe": {(split, m): predictions}, "supervised": {...}, "info": {m: {...}}}.
    """
    from mmbind.evaluation.run import _sample_index

    out: dict[str, Any] = {"linear_probe": {}, "supervised": {}, "info": {}}
    train = data.splits.get("train", {})
    n_classes = len(data.class_names)
    limit = int(_option(cfg, "baseline_max_train"))
    modalities = list(dict.fromkeys(m for ms in present.values() for m in ms))
    for m in modalities:
        if m not in train or len(train[m]) == 0:
            out["info"][m] = {"skipped": "no training samples"}
            continue
        labels = np.asarray(train[m].labels)
        known = np.flatnonzero(labels >= 0)
        pick = known[_sample_index(labels[known], limit, seed)]
        if len(np.unique(labels[pick])) < 2:
            out["info"][m] = {"skipped": "fewer than two classes in the training labels"}
            continue
        inputs = [train[m].inputs[i] for i in pick]
        info: dict[str, Any] = {"train_samples": int(len(pick))}
        started = time.perf_counter()
        probe = fit_linear_probe(encoder_features(binder, inputs, m), labels[pick], seed)
        info["probe_seconds"] = round(time.perf_counter() - started, 1)
        for split, ms in present.items():
            if m in ms and (split, m) in features:
                out["linear_probe"][split, m] = probe.predict(features[split, m])

        tower = binder.config.towers[m]
        if tower.freeze_encoder:
            info["supervised_skipped"] = "encoder frozen in the binder: the linear probe is its bound"
        else:
            started = time.perf_counter()
            epochs = int(_option(cfg, "supervised_epochs"))
            model, run = train_supervised_encoder(
                binder, m, inputs, labels[pick], n_classes, epochs=epochs,
                batch_size=int(_option(cfg, "supervised_batch_size")), lr=float(_option(cfg, "supervised_lr")),
                seed=seed, max_seconds=float(_option(cfg, "supervised_max_seconds")))
            info.update(run)
            for split, ms in present.items():
                if m in ms:
                    out["supervised"][split, m] = predict(model, binder, m, list(data.splits[split][m].inputs))
            info.update({"encoder": tower.encoder, "epochs": epochs,
                         "parameters": int(sum(p.numel() for p in model.encoder.parameters())),
                         # an encoder frozen by its own options (e.g. freeze=True) trains only the classifier
                         "trainable_parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
                         "supervised_seconds": round(time.perf_counter() - started, 1)})
        out["info"][m] = info
    return out
