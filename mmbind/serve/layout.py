"""The explorer's 2-D map: every collection's vectors laid out together (UMAP, or PCA as the fast
fallback), saved in the store (mmbind.store.maps) and reused at the next start; entries added
after the map was computed, and queries, are placed among their nearest neighbours."""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MAP_NAME = "explorer"
UMAP_MAX_POINTS = 30_000  # above this UMAP takes minutes on 2 cores; "auto" then uses PCA
METHODS = ("auto", "umap", "pca")


def compute_layout(vectors: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str, dict[str, Any]]:
    """(N, 2) float32 positions of unit vectors (N, D), the method used and its parameters.

    ``auto`` is UMAP (cosine, 15 neighbours) up to UMAP_MAX_POINTS points, PCA above, or when
    umap-learn is missing."""
    if method not in METHODS:
        raise ValueError(f"map method {method!r}: expected one of {', '.join(METHODS)}")
    vectors = np.asarray(vectors, dtype=np.float32)
    n = len(vectors)
    if method == "auto":
        method = "umap" if 15 < n <= UMAP_MAX_POINTS and _has_umap() else "pca"
    started = time.perf_counter()
    if method == "umap":
        import umap

        params = {"n_neighbors": min(15, n - 1), "min_dist": 0.1, "metric": "cosine", "random_state": seed}
        xy = umap.UMAP(n_components=2, **params).fit_transform(vectors)
    else:
        params = {"components": 2}
        xy = _pca(vectors)
    log.info("map of %d points by %s in %.1f s", n, method, time.perf_counter() - started)
    return np.ascontiguousarray(xy, dtype=np.float32), method, params


def _has_umap() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def _pca(vectors: np.ndarray) -> np.ndarray:
    if len(vectors) < 2:
        return np.zeros((len(vectors), 2), np.float32)
    centred = vectors - vectors.mean(axis=0)
    # The top two eigenvectors of the D x D covariance: cheap for any N.
    _, eigenvectors = np.linalg.eigh(centred.T @ centred)
    return centred @ eigenvectors[:, ::-1][:, :2]


def place(neighbour_xy: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """A new point's position: the mean of its nearest neighbours' positions, weighted by their
    similarity (how UMAP's transform starts a new point). ``neighbour_xy`` is (k, 2)."""
    neighbour_xy = np.asarray(neighbour_xy, dtype=np.float32)
    if len(neighbour_xy) == 0:
        return np.zeros(2, np.float32)
    weights = np.exp((np.asarray(scores, np.float32) - np.max(scores)) / 0.05)
    return (weights[:, None] * neighbour_xy).sum(axis=0) / weights.sum()


__all__ = ["MAP_NAME", "UMAP_MAX_POINTS", "METHODS", "compute_layout", "place"]
