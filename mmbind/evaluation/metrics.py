"""Metrics on embeddings and predictions: accuracy, confusion, retrieval R@K with its chance
level, and accuracy per group (speaker, language, any meta field). Pure numpy."""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from mmbind.pairing import key_matches
from mmbind.search.topk import topk_blocks


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


# --- retrieval -------------------------------------------------------------------------------------
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


def _hits(queries: np.ndarray, query_keys: Sequence[str], gallery: np.ndarray,
          gallery_keys: Sequence[str], k: int) -> np.ndarray:
    """(Q, k) booleans: is each query's i-th nearest gallery item relevant to it."""
    _, top = topk_blocks(np.ascontiguousarray(queries, dtype=np.float32),
                         [(0, np.ascontiguousarray(gallery, dtype=np.float32))], min(k, len(gallery)))
    cache: dict[tuple[str, str], bool] = {}
    hits = np.zeros(top.shape, dtype=bool)
    for i, (q, row) in enumerate(zip(query_keys, top)):
        for j, g in enumerate(row):
            pair = (q, gallery_keys[g])
            if pair not in cache:
                cache[pair] = relevant(*pair)
            hits[i, j] = cache[pair]
    return hits


def _chance_recall(counts: np.ndarray, size: int, k: int) -> float:
    """Expected R@k of a random ranking: 1 - P(no relevant item among k drawn without replacement)."""
    k = min(k, size)
    miss = np.ones(len(counts))
    for i in range(k):
        miss *= np.clip(size - counts - i, 0, None) / (size - i)
    return float((1 - miss).mean()) if len(counts) else float("nan")


def retrieval_metrics(queries: np.ndarray, query_keys: Sequence[str], gallery: np.ndarray,
                      gallery_keys: Sequence[str], ks: Sequence[int] = (1, 5, 10)) -> dict[str, Any]:
    """R@K (share of queries with a relevant gallery item among their k nearest) with chance beside it.

    Queries without any relevant item (possible with uniquely keyed data) are left out and counted
    in ``unmatched`` (``n_queries`` counts the rest), so a missing partner does not read as a
    retrieval failure.
    """
    counts = relevant_counts(query_keys, gallery_keys)
    matched = np.flatnonzero(counts > 0)
    result: dict[str, Any] = {"n_queries": int(len(matched)), "gallery_size": int(len(gallery_keys)),
                              "unmatched": int(len(query_keys) - len(matched))}
    if len(matched) == 0 or len(gallery_keys) == 0:
        return result
    hits = _hits(queries[matched], [query_keys[i] for i in matched], gallery, gallery_keys, max(ks))
    for k in ks:
        result[f"R@{k}"] = float(hits[:, :k].any(axis=1).mean())
        result[f"chance_R@{k}"] = _chance_recall(counts[matched], len(gallery_keys), k)
    return result


def recall_at_k(queries: np.ndarray, query_keys: Sequence[str], gallery: np.ndarray,
                gallery_keys: Sequence[str], ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Just the R@K values of ``retrieval_metrics``: {k: R@k}."""
    metrics = retrieval_metrics(queries, query_keys, gallery, gallery_keys, ks)
    return {k: metrics.get(f"R@{k}", float("nan")) for k in ks}


def pair_kind(query: str, gallery: str, anchor: str) -> str:
    """"paired" when the two were trained together (one is the anchor), else "emergent"."""
    return "paired" if anchor in (query, gallery) else "emergent"


# --- groups (speaker, language, ...) ---------------------------------------------------------------
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
