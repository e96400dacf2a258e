"""Evaluate a run: zero-shot classification through prompts, retrieval R@K for every ordered pair
of modalities (paired with the anchor, or emergent), supervised bounds beside chance, and
accuracy per speaker/language (or any other meta field).

``evaluate_run(binder, data, recipe)`` returns a JSON-able dict (schema in docs/evaluation.md);
``mmbind.evaluation.results.format_table`` prints it.
"""
from __future__ import annotations

import math
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import mmbind
from mmbind.evaluation.gap import modality_gap
from mmbind.evaluation.metrics import accuracy, confusion_matrix, group_scores, pair_kind, retrieval_metrics
from mmbind.evaluation.sampling import balanced_sample
from mmbind.evaluation.zero_shot import class_embeddings, prompt_modality, zero_shot_predict

if TYPE_CHECKING:
    from mmbind.binder import Binder
    from mmbind.plugin.specs import BindingData
    from mmbind.recipe import Recipe

SCHEMA_VERSION = 1
SAMPLE_NAME = "embeddings-sample.npz"  # compact sample of the joint space for the report's UMAP
SAMPLE_PER_MODALITY = 300  # points per (split, modality) in that sample: enough for a UMAP picture
Embedded = dict[tuple[str, str], np.ndarray]  # (split, modality) -> rows


def versions() -> dict[str, str]:
    """Versions that a comparison between two runs should show."""
    found = {"mmbind": mmbind.__version__, "python": sys.version.split()[0], "platform": platform.platform(),
             "numpy": np.__version__}
    for module in ("torch", "sklearn"):
        try:
            found[module] = __import__(module).__version__
        except ImportError:
            pass
    return found


def save_embedding_sample(path: Path, embedded: Embedded, data: "BindingData",
                          per_modality: int = SAMPLE_PER_MODALITY, seed: int = 0) -> Path:
    """A compact, pickle-free sample of the joint space (npz) for the report's UMAP picture."""
    chunks, modality, split, labels = [], [], [], []
    for (s, m), vectors in embedded.items():
        index = balanced_sample(data.splits[s][m].labels, per_modality, seed)
        chunks.append(vectors[index])
        modality += [m] * len(index)
        split += [s] * len(index)
        labels += [int(data.splits[s][m].labels[i]) for i in index]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, embeddings=np.concatenate(chunks).astype(np.float32),
                        modality=np.array(modality, dtype=str), split=np.array(split, dtype=str),
                        labels=np.array(labels, dtype=np.int64),
                        class_names=np.array(list(data.class_names), dtype=str))
    return path


def evaluate_run(binder: "Binder", data: "BindingData", recipe: "Recipe", *, prompt_tower: str | None = None,
                 run_dir: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a binder on the recipe's eval split (and extra splits, e.g. held-out real recordings).

    Per modality: zero-shot accuracy through the averaged prompts of the prompt tower
    (``prompt_tower``, else ``[eval] text_modality``, else the binder's language tower), its
    confusion matrix, chance, and (if ``[eval] supervised_baselines``) a linear probe and a
    same-size supervised encoder. Per ordered pair of modalities: R@K, marked paired or emergent.
    Per bound modality: the modality gap to the anchor (mmbind.evaluation.gap).
    Samples of extra splits query the eval split's galleries. Also writes a small embedding
    sample to the run folder (``run_dir``, default the recipe's) for the report.
    """
    started = time.perf_counter()
    cfg = recipe.eval
    splits = [cfg.split, *[s for s in cfg.extra_splits if s != cfg.split]]
    for split in splits:
        if split not in data.splits:
            raise ValueError(f"[eval] split {split!r} not in dataset {recipe.dataset!r} "
                             f"(it has {', '.join(data.splits)})")
    prompts = prompt_modality(binder, prompt_tower or cfg.text_modality or None)
    classes = class_embeddings(binder, data.class_names, cfg.templates, prompts) \
        if prompts is not None and data.class_names else None
    supervised = cfg.supervised_baselines and len(data.class_names) > 1

    present = {s: [m for m in binder.modalities if m in data.splits[s] and len(data.splits[s][m])]
               for s in splits}
    embedded: Embedded = {}
    features: Embedded = {}
    for split in splits:
        for m in present[split]:
            out = binder.encode(list(data.splits[split][m].inputs), m, batch_size=64,
                                output_value=None if supervised else "embedding")
            embedded[split, m] = out["embedding"] if supervised else out
            if supervised:
                features[split, m] = out["features"]

    baselines: dict[str, Any] = {}
    if supervised:
        from mmbind.evaluation.baselines import supervised_baselines

        baselines = supervised_baselines(binder, data, present, features, cfg, seed=recipe.seed)

    rows = [_row(data, split, m, embedded[split, m], classes, baselines, cfg.group_by)
            for split in splits for m in present[split]]
    retrieval = [{"split": split, "query": q, "gallery": g, "kind": pair_kind(q, g, binder.anchor_modality),
                  **retrieval_metrics(embedded[split, q], data.splits[split][q].keys,
                                      embedded[cfg.split, g], data.splits[cfg.split][g].keys, cfg.recall_k)}
                 for split in splits for q in present[split] for g in present[cfg.split] if q != g]
    for row in rows:  # R@K to the anchor beside each modality, as the main table prints it
        for r in retrieval:
            if (r["split"], r["query"], r["gallery"]) == (row["split"], row["modality"], binder.anchor_modality):
                row.update({f"{k}_to_anchor": r[k] for k in r if k.startswith("R@")})

    anchor = binder.anchor_modality
    gaps = [{"split": split, "modality": m, "temperature": binder.temperature(m) if m in binder.bound_modalities else None,
             **modality_gap(embedded[split, m], data.splits[split][m].labels, embedded[cfg.split, anchor],
                            data.splits[cfg.split][anchor].labels, seed=recipe.seed)}
            for split in splits for m in present[split] if m != anchor and anchor in present[cfg.split]]

    run_dir = Path(run_dir) if run_dir is not None else recipe.run_dir
    sample = save_embedding_sample(run_dir / SAMPLE_NAME, embedded, data, seed=recipe.seed)
    results = {
        "schema": SCHEMA_VERSION,
        "recipe": recipe.name,
        "seed": recipe.seed,
        "dataset": recipe.dataset,
        "dataset_options": dict(recipe.dataset_options),
        "anchor": binder.anchor_modality,
        "text_modality": prompts,
        "split": cfg.split,
        "extra_splits": splits[1:],
        "templates": list(cfg.templates),
        "recall_k": list(cfg.recall_k),
        "class_names": list(data.class_names),
        "simulated": sorted(data.simulated),
        "modalities": binder.modalities,
        "data_sizes": {s: {m: len(v) for m, v in data.splits[s].items()} for s in data.splits},
        "temperatures": {m: binder.temperature(m) for m in binder.bound_modalities},
        "fingerprint": binder.fingerprint(),
        "versions": versions(),
        "recipe_config": recipe.raw,
        "supervised_info": baselines.get("info", {}),
        "embedding_sample": sample.name,
        "rows": rows,
        "retrieval": retrieval,
        "modality_gap": gaps,
        "eval_seconds": round(time.perf_counter() - started, 1),
    }
    from mmbind.tracking import emit, tracking

    with tracking(recipe, run_dir):
        emit("on_eval_end", results=results, run_dir=run_dir)
    return results


def _row(data: "BindingData", split: str, modality: str, embedded: np.ndarray, classes: np.ndarray | None,
         baselines: dict[str, Any], group_by: list[str]) -> dict[str, Any]:
    """One (split, modality) row: zero-shot with its confusion, the bounds, scores per group."""
    samples = data.splits[split][modality]
    n_classes = len(data.class_names)
    row: dict[str, Any] = {"split": split, "modality": modality, "n": len(samples),
                           "simulated": modality in data.simulated,
                           "chance": 1.0 / n_classes if n_classes else None}
    predictions: dict[str, np.ndarray] = {}
    if classes is not None:
        predictions["zero_shot"] = zero_shot_predict(embedded, classes)
        row["zero_shot"] = accuracy(predictions["zero_shot"], samples.labels)
        row["confusion"] = confusion_matrix(samples.labels, predictions["zero_shot"], n_classes)
    for name in ("linear_probe", "supervised"):
        if (split, modality) in baselines.get(name, {}):
            predictions[name] = baselines[name][split, modality]
            row[name] = accuracy(predictions[name], samples.labels)
    bounds = [row[k] for k in ("linear_probe", "supervised") if k in row and not math.isnan(row[k])]
    if bounds:
        row["supervised_bound"] = max(bounds)
        if "zero_shot" in row and row["supervised_bound"] > 0:
            row["zero_shot_of_bound"] = row["zero_shot"] / row["supervised_bound"]
    groups = group_scores(samples.meta, samples.labels, predictions, group_by)
    if groups:
        row["groups"] = groups
    return row
