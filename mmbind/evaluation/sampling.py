"""Small, class-balanced, reproducible samples of a split (baselines' training sets, the report's
picture of the joint space)."""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np


def balanced_sample(labels: Sequence[int], limit: int, seed: int) -> np.ndarray:
    """Up to ``limit`` indices (sorted), spread evenly over the classes, reproducible from ``seed``."""
    labels = np.asarray(labels)
    if len(labels) <= limit:
        return np.arange(len(labels))
    order = np.random.default_rng(seed).permutation(len(labels))
    # Round-robin over the classes in a random order keeps every class represented.
    rank = np.empty(len(labels), dtype=np.int64)
    seen: dict[int, int] = defaultdict(int)
    for i in order:
        rank[i] = seen[int(labels[i])]
        seen[int(labels[i])] += 1
    return np.sort(order[np.argsort(rank[order], kind="stable")[:limit]])
