"""Evaluation: zero-shot classification through averaged text prompts, retrieval R@K for every
ordered pair of modalities (paired with the anchor, or emergent), supervised bounds beside chance,
and accuracy per speaker/language (or any other meta field).

``evaluate_run(binder, data, recipe)`` returns a JSON-able dict (schema in docs/evaluation.md);
``format_table`` prints it. The supervised baselines live in mmbind/supervised.py.
"""
from __future__ import annotations

import math
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmbind.pairing import key_matches

SCHEMA_VERSION = 1
SAMPLE_NAME = "embeddings-sample.npz"  # compact sample of the joint space for the report's UMAP
DEFAULT_GROUP_BY = ("speaker", "language")


# --- zero-shot ---------------------------------------------------------------------------------
def class_embeddings(binder, class_names: Sequence[str], templates: Sequence[str],
                     text_modality: str = "text") -> np.ndarray:
    """One unit vector per class: the mean of its prompt embeddings, renormalised (as CLIP does)."""
    rows = []
    for name in class_names:
        prompts = binder.encode([t.format(name) for t in templates], modality=text_modality)
        mean = prompts.mean(axis=0)
        rows.append(mean / np.linalg.norm(mean))
    return np.stack(rows).astype(np.float32)


def zero_shot_predict(embeddings: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The class whose prompt embedding is nearest (cosine) to each embedding."""
    return (embeddings @ classes.T).argmax(axis=1)


def zero_shot_accuracy(embeddings: np.ndarray, labels: Sequence[int], classes: np.ndarray) -> float:
    """Share of samples (with a known label, >= 0) whose nearest class prompt is their class."""
    return accuracy(zero_shot_predict(embeddings, classes), labels)


def accuracy(predicted: Sequence[int], labels: Sequence[int]) -> float:
    """Accuracy over the samples with a known label (label -1 means unknown); NaN if none."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    known = labels >= 0
    return float((predicted[known] == labels[known]).mean()) if known.any() else float("nan")


def confusion_matrix(labels: Sequence[int], predicted: Sequence[int], n_classes: int) -> list[list[int]]:
    """Counts [true class][predicted class]; unknown labels (-1) are left out."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    for true, pred in zip(labels, predicted):
        if 0 <= true < n_classes:
            matrix[true, pred] += 1
    return matrix.tolist()


# --- retrieval -----------------------------------------------------------------------------------
def relevant(query_key: str, gallery_key: str) -> bool:
    """Two samples are relevant to each other when their pairing keys match in either direction."""
    return key_matches(query_key, gallery_key) or key_matches(gallery_key, query_key)


def relevant_counts(query_keys: Sequence[str], gallery_keys: Sequence[str]) -> np.ndarray:
    """For each query, how many gallery samples are relevant to it (fast path for plain keys)."""
    extends: dict[str, int] = defaultdict(int)  # prefix -> gallery keys equal to or extending it
    exact: dict[str, int] = defaultdict(int)
    wild = any("*" in k or "?" in k for k in gallery_keys)
    for key in gallery_keys:
        exact[key] += 1
        parts = key.split("/")
        for n in range(1, len(parts) + 1):
            extends["/".join(parts[:n])] += 1
    cache: dict[str, int] = {}
    out = np.zeros(len(query_keys), dtype=np.int64)
    for i, q in enumerate(query_keys):
        if q not in cache:
            if wild or "*" in q or "?" in q:
                cache[q] = sum(relevant(q, g) for g in gallery_keys)
            else:
                parts = q.split("/")  # gallery keys that q extends: strict path prefixes of q
                cache[q] = extends.get(q, 0) + sum(exact.get("/".join(parts[:n]), 0) for n in range(1, len(parts)))
        out[i] = cache[q]
    return out


def _top_k(queries: np.ndarray, gallery: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
    """Indices of the k most similar gallery rows per query, best first (blocks bound the memory)."""
    k = min(k, len(gallery))
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), block):
        scores = queries[start:start + block] @ gallery.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else \
            np.tile(np.arange(scores.shape[1]), (len(scores), 1))
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        out[start:start + block] = np.take_along_axis(part, order, axis=1)
    return out


def _hits(query_keys: Sequence[str], gallery_keys: Sequence[str], top: np.ndarray) -> np.ndarray:
    cache: dict[tuple[str, str], bool] = {}
    hits = np.zeros(top.shape, dtype=bool)
    for i, (q, row) in enumerate(zip(query_keys, top)):
        for j, g in enumerate(row):
            pair = (q, gallery_keys[g])
            if pair not in cache:
                cache[pair] = relevant(*pair)
            hits[i, j] = cache[pair]
    return hits


def recall_at_k(queries: np.ndarray, query_keys: Sequence[str], gallery: np.ndarray,
                gallery_keys: Sequence[str], ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Share of queries with a relevant gallery item (pairing keys match) among their top k."""
    hits = _hits(query_keys, gallery_keys, _top_k(queries, gallery, max(ks)))
    return {k: float(hits[:, :k].any(axis=1).mean()) for k in ks}


def _chance_recall(counts: np.ndarray, size: int, k: int) -> float:
    """Expected R@k of a random ranking: 1 - P(no relevant item among k drawn without replacement)."""
    k = min(k, size)
    miss = np.ones(len(counts))
    for i in range(k):
        miss *= np.clip(size - counts - i, 0, None) / (size - i)
    return float((1 - miss).mean()) if len(counts) else float("nan")


def retrieval_metrics(queries: np.ndarray, query_keys: Sequence[str], gallery: np.ndarray,
                      gallery_keys: Sequence[str], ks: Sequence[int] = (1, 5, 10)) -> dict[str, Any]:
    """R@K over the queries that have at least one relevant gallery item, with chance beside it.

    Queries without any relevant item (possible with uniquely keyed data) are left out and
    counted in ``unmatched`` (``n_queries`` counts the rest), so a missing partner does not read as a retrieval failure.
    """
    counts = relevant_counts(query_keys, gallery_keys)
    matched = np.flatnonzero(counts > 0)
    result: dict[str, Any] = {"n_queries": int(len(matched)), "gallery_size": int(len(gallery_keys)),
                              "unmatched": int(len(query_keys) - len(matched))}
    if len(matched) == 0 or len(gallery_keys) == 0:
        return result
    keys = [query_keys[i] for i in matched]
    hits = _hits(keys, gallery_keys, _top_k(queries[matched], gallery, max(ks)))
    for k in ks:
        result[f"R@{k}"] = float(hits[:, :k].any(axis=1).mean())
        result[f"chance_R@{k}"] = _chance_recall(counts[matched], len(gallery_keys), k)
    return result


def pair_kind(query: str, gallery: str, anchor: str) -> str:
    """"paired" when the two were trained together (one is the anchor), else "emergent"."""
    return "paired" if anchor in (query, gallery) else "emergent"


# --- groups (speaker, language, ...) -----------------------------------------------------------
def group_scores(meta: Sequence[dict] | None, labels: Sequence[int], predictions: dict[str, np.ndarray],
                 fields: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Accuracy of each prediction set per value of each meta field, e.g. per speaker."""
    if not meta:
        return {}
    labels = np.asarray(labels)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for field in fields:
        values = np.array([str((m or {}).get(field)) if (m or {}).get(field) is not None else ""
                           for m in meta])
        if not any(values):
            continue
        out[field] = {}
        for value in sorted(set(values) - {""}):
            index = values == value
            entry: dict[str, Any] = {"n": int(index.sum())}
            for name, predicted in predictions.items():
                entry[name] = accuracy(np.asarray(predicted)[index], labels[index])
            out[field][value] = entry
    return out


# --- the run -----------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    """Versions that a comparison between two runs should show."""
    import mmbind

    found = {"mmbind": mmbind.__version__, "python": sys.version.split()[0], "platform": platform.platform(),
             "numpy": np.__version__}
    for module in ("torch", "sklearn"):
        try:
            found[module] = __import__(module).__version__
        except ImportError:
            pass
    return found


def _encode(binder, inputs: Sequence[Any], modality: str, features: bool, batch_size: int = 64):
    """Embeddings (unit rows) and, if asked, the encoder's features before the head, in one pass."""
    import torch
    import torch.nn.functional as F

    from mmbind.binder import to_device

    if not features:
        return binder.encode(inputs, modality, batch_size=batch_size, show_progress_bar=False), None
    device = next(binder.parameters()).device
    was_training = binder.training
    binder.eval()
    embedded, raw = [], []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            batch = to_device(binder.prepare(inputs[start:start + batch_size], modality), device)
            feats = binder.encoders[modality](batch)
            # Binder.forward is head(encoder(x)) then l2-normalise; done here to keep the features.
            embedded.append(F.normalize(binder.heads[modality](feats), dim=-1).float().cpu())
            raw.append(feats.float().cpu())
    binder.train(was_training)
    return torch.cat(embedded).numpy(), torch.cat(raw).numpy()


def _text_modality(binder, cfg, override: str | None) -> str | None:
    """The tower that embeds the prompts: asked for explicitly (must exist), else "text" if bound."""
    asked = override or getattr(cfg, "text_modality", None)
    if asked and asked not in binder.modalities:
        raise ValueError(f"text modality {asked!r} for the zero-shot prompts is not a tower of this binder "
                         f"(towers: {', '.join(binder.modalities)})")
    name = asked or "text"
    return name if name in binder.modalities else None


def _sample_index(labels: Sequence[int], limit: int, seed: int) -> np.ndarray:
    """Up to ``limit`` indices, spread evenly over the classes, reproducible from ``seed``."""
    labels = np.asarray(labels)
    if len(labels) <= limit:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    # Round-robin over classes in a random order keeps every class represented.
    rank = np.empty(len(labels), dtype=np.int64)
    seen: dict[int, int] = defaultdict(int)
    for i in order:
        rank[i] = seen[int(labels[i])]
        seen[int(labels[i])] += 1
    return np.sort(order[np.argsort(rank[order], kind="stable")[:limit]])


def save_embedding_sample(path: Path, embedded: dict[tuple[str, str], np.ndarray],
                          data, per_modality: int = 300, seed: int = 0) -> Path:
    """A compact, pickle-free sample of the joint space (npz) for the report's UMAP picture."""
    chunks, modality, split, labels = [], [], [], []
    for (s, m), vectors in embedded.items():
        index = _sample_index(data.splits[s][m].labels, per_modality, seed)
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


def evaluate_run(binder, data, recipe, *, text_modality: str | None = None,
                 run_dir: str | Path | None = None) -> dict:
    """Evaluate a binder on the recipe's eval split (and extra splits, e.g. held-out real recordings).

    Per modality: zero-shot accuracy through the averaged text prompts, its confusion matrix,
    chance, and (if ``[eval] supervised_baselines``) a linear probe and a same-size supervised
    encoder. Per ordered pair of modalities: R@K, marked paired or emergent. Samples of extra
    splits query the eval split's galleries. Also writes a small embedding sample to the run
    folder (``run_dir``, default the recipe's) for the report.
    """
    started = time.perf_counter()
    cfg = recipe.eval
    splits = [cfg.split, *[s for s in cfg.extra_splits if s != cfg.split]]
    for split in splits:
        if split not in data.splits:
            raise ValueError(f"[eval] split {split!r} not in dataset {recipe.dataset!r} "
                             f"(it has {', '.join(data.splits)})")
    anchor = binder.anchor_modality
    text = _text_modality(binder, cfg, text_modality)
    classes = class_embeddings(binder, data.class_names, cfg.templates, text) \
        if text is not None and data.class_names else None
    n_classes = len(data.class_names)
    group_by = list(getattr(cfg, "group_by", DEFAULT_GROUP_BY))
    supervised = bool(cfg.supervised_baselines) and n_classes > 1

    present = {s: [m for m in binder.modalities if m in data.splits[s] and len(data.splits[s][m])]
               for s in splits}
    embedded: dict[tuple[str, str], np.ndarray] = {}
    features: dict[tuple[str, str], np.ndarray] = {}
    for split in splits:
        for m in present[split]:
            embedded[split, m], feats = _encode(binder, list(data.splits[split][m].inputs), m, supervised)
            if feats is not None:
                features[split, m] = feats

    baselines: dict = {}
    if supervised:
        from mmbind.evaluation.baselines import supervised_baselines

        baselines = supervised_baselines(binder, data, present, features, seed=recipe.seed, cfg=cfg)

    rows = []
    for split in splits:
        for m in present[split]:
            samples = data.splits[split][m]
            row: dict[str, Any] = {"split": split, "modality": m, "n": len(samples),
                                   "simulated": m in data.simulated,
                                   "chance": 1.0 / n_classes if n_classes else None}
            predictions: dict[str, np.ndarray] = {}
            if classes is not None:
                predictions["zero_shot"] = zero_shot_predict(embedded[split, m], classes)
                row["zero_shot"] = accuracy(predictions["zero_shot"], samples.labels)
                row["confusion"] = confusion_matrix(samples.labels, predictions["zero_shot"], n_classes)
            for name in ("linear_probe", "supervised"):
                if (split, m) in baselines.get(name, {}):
                    predictions[name] = baselines[name][split, m]
                    row[name] = accuracy(predictions[name], samples.labels)
            bounds = [row[k] for k in ("linear_probe", "supervised") if k in row and not math.isnan(row[k])]
            if bounds:
                row["supervised_bound"] = max(bounds)
                if "zero_shot" in row and row["supervised_bound"] > 0:
                    row["zero_shot_of_bound"] = row["zero_shot"] / row["supervised_bound"]
            groups = group_scores(samples.meta, samples.labels, predictions, group_by)
            if groups:
                row["groups"] = groups
            rows.append(row)

    retrieval = []
    gallery_split = data.splits[cfg.split]
    for split in splits:
        for q in present[split]:
            for g in present[cfg.split]:
                if q == g:
                    continue
                metrics = retrieval_metrics(embedded[split, q], data.splits[split][q].keys,
                                            embedded[cfg.split, g], gallery_split[g].keys, cfg.recall_k)
                retrieval.append({"split": split, "query": q, "gallery": g,
                                  "kind": pair_kind(q, g, anchor), **metrics})
    for row in rows:  # R@K to the anchor beside each modality, as the main table prints it
        for r in retrieval:
            if (r["split"], r["query"], r["gallery"]) == (row["split"], row["modality"], anchor):
                row.update({f"{k}_to_anchor": r[k] for k in r if k.startswith("R@")})

    run_dir = Path(run_dir) if run_dir is not None else recipe.run_dir
    sample = save_embedding_sample(run_dir / SAMPLE_NAME, embedded, data, seed=recipe.seed)
    return {
        "schema": SCHEMA_VERSION,
        "recipe": recipe.name,
        "seed": recipe.seed,
        "dataset": recipe.dataset,
        "dataset_options": dict(recipe.dataset_options),
        "anchor": anchor,
        "text_modality": text,
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
        "eval_seconds": round(time.perf_counter() - started, 1),
    }


# --- printing and comparing --------------------------------------------------------------------
def _pct(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def modality_label(modality: str, results: dict) -> str:
    return modality + (" (simulated)" if modality in results.get("simulated", ()) else "")


def format_table(results: dict) -> str:
    """The result tables the main job prints: per modality, then R@1 for every pair."""
    anchor = results.get("anchor", "anchor")
    lines = [f"zero-shot classification (chance {_pct((results['rows'] or [{}])[0].get('chance'))}); "
             f"bound = best of linear probe and same-size supervised encoder"]
    head = (f"{'split':6s} {'modality':22s} {'n':>6s} {'zero-shot':>9s} {'probe':>7s} {'superv.':>7s} "
            f"{'zs/bound':>8s} {'R@1->' + anchor:>12s}")
    lines += [head, "-" * len(head)]
    for row in results["rows"]:
        r1 = "(anchor)" if row["modality"] == anchor else _pct(row.get("R@1_to_anchor"))
        lines.append(f"{row['split']:6s} {modality_label(row['modality'], results):22s} {row['n']:6d} "
                     f"{_pct(row.get('zero_shot')):>9s} {_pct(row.get('linear_probe')):>7s} "
                     f"{_pct(row.get('supervised')):>7s} {_pct(row.get('zero_shot_of_bound')):>8s} {r1:>12s}")
    matrix = r1_matrix(results)
    if matrix["queries"]:
        lines += ["", f"retrieval R@1 ({results.get('split', 'test')} galleries); rows: query, columns: gallery; "
                      f"* = emergent (never trained together)"]
        width = max(8, *(len(g) + 1 for g in matrix["galleries"]))
        lines.append(" " * 16 + "".join(f"{g:>{width}s}" for g in matrix["galleries"]))
        for (label, cells) in zip(matrix["queries"], matrix["cells"]):
            text = "".join(f"{'-' if c is None else ('*' if c[1] == 'emergent' else '') + _pct(c[0]):>{width}s}"
                           for c in cells)
            lines.append(f"{label:16s}{text}")
    grouped = [row for row in results["rows"] if row.get("groups") and "zero_shot" in row]
    if grouped:
        lines += ["", "zero-shot by group"]
    for row in grouped:
        for field, values in row["groups"].items():
            parts = [f"{v} {_pct(s.get('zero_shot'))} (n={s['n']})" for v, s in values.items()]
            lines.append(f"  {row['split']} {row['modality']} by {field}: " + "; ".join(parts))
    return "\n".join(lines)


def r1_matrix(results: dict, k: int = 1) -> dict[str, Any]:
    """R@k as a matrix: rows are (split, query) labels, columns galleries; cells (value, kind) or None."""
    galleries = [m for m in results.get("modalities", []) if any(r["gallery"] == m for r in results["retrieval"])]
    galleries = galleries or sorted({r["gallery"] for r in results["retrieval"]})
    queries: list[tuple[str, str]] = []
    for r in results["retrieval"]:
        if (r["split"], r["query"]) not in queries:
            queries.append((r["split"], r["query"]))
    lookup = {(r["split"], r["query"], r["gallery"]): r for r in results["retrieval"]}
    cells = []
    for split, q in queries:
        row = []
        for g in galleries:
            r = lookup.get((split, q, g))
            row.append(None if r is None or f"R@{k}" not in r else (r[f"R@{k}"], r["kind"]))
        cells.append(row)
    main = results.get("split")
    labels = [q if s == main else f"{q} ({s})" for s, q in queries]
    return {"queries": labels, "galleries": galleries, "cells": cells}


def flatten_metrics(results: dict) -> dict[str, float]:
    """Every number of an eval.json under a stable name, e.g. "test/audio zero_shot",
    "test audio->text R@1", "real/audio language=en zero_shot"."""
    flat: dict[str, float] = {}
    for row in results.get("rows", []):
        prefix = f"{row['split']}/{row['modality']}"
        for key in ("zero_shot", "linear_probe", "supervised", "supervised_bound", "zero_shot_of_bound"):
            if isinstance(row.get(key), (int, float)):
                flat[f"{prefix} {key}"] = float(row[key])
        for field, values in row.get("groups", {}).items():
            for value, scores in values.items():
                for key, score in scores.items():
                    if key != "n":
                        flat[f"{prefix} {field}={value} {key}"] = float(score)
    for r in results.get("retrieval", []):
        for key, value in r.items():
            if key.startswith("R@"):
                flat[f"{r['split']} {r['query']}->{r['gallery']} {key}"] = float(value)
    return flat


def format_comparison(a: dict, b: dict, name_a: str = "A", name_b: str = "B") -> str:
    """Both runs' values and the difference (B - A) per metric, in percentage points."""
    lines = []
    for key in ("recipe", "seed", "dataset", "fingerprint"):
        if a.get(key) != b.get(key):
            lines.append(f"{key}: {name_a}={a.get(key)!r}  {name_b}={b.get(key)!r}")
    va, vb = a.get("versions", {}), b.get("versions", {})
    for key in sorted(set(va) | set(vb)):
        if va.get(key) != vb.get(key):
            lines.append(f"version {key}: {name_a}={va.get(key)}  {name_b}={vb.get(key)}")
    if a.get("data_sizes") != b.get("data_sizes"):
        lines.append("data sizes differ: the numbers below are not on the same samples")
    fa, fb = flatten_metrics(a), flatten_metrics(b)
    keys = list(dict.fromkeys([*fa, *fb]))
    width = max([len("metric"), *map(len, keys)])
    head = f"{'metric':{width}s} {name_a[:10]:>10s} {name_b[:10]:>10s} {'diff':>8s}"
    lines += ["" if lines else None, head, "-" * len(head)]
    for key in keys:
        x, y = fa.get(key), fb.get(key)
        diff = "-" if x is None or y is None or math.isnan(x) or math.isnan(y) else f"{100 * (y - x):+.1f}"
        lines.append(f"{key:{width}s} {_pct(x):>10s} {_pct(y):>10s} {diff:>8s}")
    return "\n".join(line for line in lines if line is not None)
