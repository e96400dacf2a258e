"""Evaluation: zero-shot classification through text prompts and retrieval between towers."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from mmbind.pairing import key_matches


def class_embeddings(binder, class_names: Sequence[str], templates: Sequence[str],
                     text_modality: str = "text") -> np.ndarray:
    """One unit vector per class: the mean of its prompt embeddings, renormalised (as CLIP does)."""
    rows = []
    for name in class_names:
        prompts = binder.encode([t.format(name) for t in templates], modality=text_modality)
        mean = prompts.mean(axis=0)
        rows.append(mean / np.linalg.norm(mean))
    return np.stack(rows).astype(np.float32)


def zero_shot_accuracy(embeddings: np.ndarray, labels: Sequence[int], classes: np.ndarray) -> float:
    predicted = (embeddings @ classes.T).argmax(axis=1)
    return float((predicted == np.asarray(labels)).mean())


def recall_at_k(queries: np.ndarray, query_keys: Sequence[str], gallery: np.ndarray,
                gallery_keys: Sequence[str], ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Share of queries with a matching gallery item (by pairing key) among their top k."""
    scores = queries @ gallery.T
    top = np.argsort(-scores, axis=1)[:, :max(ks)]
    hits = np.array([[key_matches(q, gallery_keys[j]) or key_matches(gallery_keys[j], q) for j in row]
                     for q, row in zip(query_keys, top)])
    return {k: float(hits[:, :k].any(axis=1).mean()) for k in ks}


def evaluate_run(binder, data, recipe) -> dict:
    """Zero-shot accuracy and R@K to the anchor per modality, on the eval split and extra splits.

    Extra splits without anchor samples (e.g. held-out real recordings) retrieve against the
    eval split's anchor samples.
    """
    cfg = recipe.eval
    classes = None
    if "text" in binder.modalities and data.class_names:
        classes = class_embeddings(binder, data.class_names, cfg.templates)
    anchor = binder.anchor_modality
    gallery_split = data.splits[cfg.split]
    gallery = binder.encode(gallery_split[anchor].inputs, anchor)
    rows = []
    for split in [cfg.split, *cfg.extra_splits]:
        for modality, samples in data.splits[split].items():
            if modality not in binder.modalities or len(samples) == 0:
                continue
            embeddings = gallery if (split == cfg.split and modality == anchor) else \
                binder.encode(samples.inputs, modality)
            row = {"split": split, "modality": modality, "n": len(samples),
                   "simulated": modality in data.simulated}
            if classes is not None:
                row["zero_shot"] = zero_shot_accuracy(embeddings, samples.labels, classes)
            if modality != anchor:
                recalls = recall_at_k(embeddings, samples.keys, gallery, gallery_split[anchor].keys, cfg.recall_k)
                row.update({f"R@{k}_to_anchor": v for k, v in recalls.items()})
            rows.append(row)
    return {"recipe": recipe.name, "seed": recipe.seed, "anchor": anchor, "rows": rows}


def format_table(results: dict) -> str:
    """The result table the main job prints."""
    head = f"{'split':8s} {'modality':10s} {'n':>6s} {'zero-shot':>10s} {'R@1->anchor':>12s}"
    lines = [head, "-" * len(head)]
    for row in results["rows"]:
        zs = f"{100 * row['zero_shot']:.1f}%" if "zero_shot" in row else "-"
        r1 = f"{100 * row['R@1_to_anchor']:.1f}%" if "R@1_to_anchor" in row else "(anchor)"
        name = row["modality"] + (" (sim)" if row.get("simulated") else "")
        lines.append(f"{row['split']:8s} {name:10s} {row['n']:6d} {zs:>10s} {r1:>12s}")
    return "\n".join(lines)
