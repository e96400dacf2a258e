"""Which anchor samples a modality sample pairs with, by key (see ModalitySamples.keys)."""
from __future__ import annotations

import fnmatch
from collections import defaultdict
from typing import Sequence


def key_matches(key: str, anchor_key: str) -> bool:
    """"7" matches "7" and "7/red"; "7/red" matches only "7/red"; "*/red" matches any red anchor."""
    if "*" in key or "?" in key:
        return fnmatch.fnmatchcase(anchor_key, key) or fnmatch.fnmatchcase(anchor_key, key + "/*")
    return anchor_key == key or anchor_key.startswith(key + "/")


def pair_index(anchor_keys: Sequence[str], keys: Sequence[str]) -> list[list[int]]:
    """For each key, the indices of the anchor samples it pairs with."""
    by_prefix: dict[str, list[int]] = defaultdict(list)
    for i, anchor_key in enumerate(anchor_keys):
        parts = anchor_key.split("/")
        for n in range(1, len(parts) + 1):
            by_prefix["/".join(parts[:n])].append(i)
    cache: dict[str, list[int]] = {}
    result = []
    for key in keys:
        if key not in cache:
            if "*" in key or "?" in key:
                cache[key] = [i for i, a in enumerate(anchor_keys) if key_matches(key, a)]
            else:
                cache[key] = by_prefix.get(key, [])
        result.append(cache[key])
    return result
