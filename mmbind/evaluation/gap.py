"""The modality gap (Liang et al., "Mind the Gap", NeurIPS 2022): how far a bound modality's
embeddings sit from the anchor's in the joint space, even when retrieval between them works.

Two numbers per bound modality, on unit embeddings:
- ``centroid_distance``: the Euclidean distance between the modality's mean embedding and the
  anchor's (0 = same centre; two disjoint clusters on the sphere approach 2);
- ``own_neighbour_share``: equal-size, class-balanced samples of both are pooled, and for each
  point of the modality the share of its k nearest neighbours (itself left out) that are of its
  own modality. ``mixed_share`` beside it is that share when the two are perfectly mixed,
  (n - 1) / (2n - 1); 1.0 means every neighbour is of the same modality (an island).
Pure numpy.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mmbind.evaluation.sampling import balanced_sample
from mmbind.search.topk import normalize_rows, topk_blocks

GAP_K = 10  # neighbours per point
GAP_SAMPLES = 1000  # most points per side: the share is a mean over them, 1000 is plenty


def modality_gap(embedded: np.ndarray, labels: Sequence[int], anchor: np.ndarray, anchor_labels: Sequence[int],
                 k: int = GAP_K, max_samples: int = GAP_SAMPLES, seed: int = 0) -> dict[str, Any]:
    """Centroid distance and own-neighbour share of ``embedded`` against ``anchor`` (module docstring).

    Both sides are taken as unit vectors; the neighbour share uses n = min(len(each), max_samples)
    points of each side, chosen class-balanced and reproducibly from ``seed``.
    """
    x, a = normalize_rows(embedded, "embeddings"), normalize_rows(anchor, "anchor embeddings")
    if x.shape[1] != a.shape[1]:
        raise ValueError(f"modality gap: embeddings of dimension {x.shape[1]} and {a.shape[1]} are not in one space")
    out: dict[str, Any] = {"centroid_distance": float(np.linalg.norm(x.mean(0) - a.mean(0)))}
    n = min(len(x), len(a), max_samples)
    if n < 2:
        return {**out, "n": n}
    x = x[balanced_sample(labels, n, seed)]
    a = a[balanced_sample(anchor_labels, n, seed + 1)]
    pooled = np.concatenate([x, a])
    k = min(k, 2 * n - 1)
    _, top = topk_blocks(x, [(0, pooled)], k + 1)  # +1: each point finds itself first
    own = 0
    for i, row in enumerate(top):
        others = [j for j in row if j != i][:k]
        own += sum(j < n for j in others)
    return {**out, "own_neighbour_share": own / (n * k), "mixed_share": (n - 1) / (2 * n - 1), "k": k, "n": n}
