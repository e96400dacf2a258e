"""Named 2-D maps of a store's collections (the layout `mmbind serve` draws), kept in the store.

A map gives every entry of some collections a point in the plane, computed once (UMAP or PCA)
and saved so the next start is instant. File layout, beside ``/collections``:

    /maps/<name>/          attrs: method (str), params (JSON), created (ISO 8601 UTC)
        <collection>       float32 (rows, 2): the point of rows 0..rows-1 of that collection;
                           attr fingerprint: the collection's binder fingerprint when computed

Saving is a structural change, so it goes through ``EmbeddingStore.restructure`` (a copy that
atomically replaces the file): a writer killed while saving leaves the old store intact.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

import numpy as np

from mmbind.store.errors import StoreError
from mmbind.store.schema import COLLECTION_NAME
from mmbind.store.store import EmbeddingStore

MAPS_GROUP = "maps"


@dataclass(frozen=True)
class StoredMap:
    """A saved map: ``positions[collection]`` is (rows, 2) float32, row i for entry row i."""

    name: str
    method: str
    created: str
    params: dict[str, Any] = field(default_factory=dict)
    positions: dict[str, np.ndarray] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)


def save_map(store: EmbeddingStore, name: str, positions: Mapping[str, Any], *, method: str,
             params: Mapping[str, Any] | None = None) -> None:
    """Save (or replace) map ``name``: ``positions`` maps collection names to (rows, 2) arrays
    whose rows are the collection's first entries. Needs a writer (``mode="a"``)."""
    if not isinstance(name, str) or not COLLECTION_NAME.match(name):
        raise StoreError(f"map name {name!r}: expected letters, digits, '_', '.', '-'")
    arrays: dict[str, np.ndarray] = {}
    fingerprints: dict[str, str] = {}
    for collection, xy in positions.items():
        info = store.info(collection)  # raises StoreError naming the store's collections
        array = np.asarray(xy, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] > info.count:
            raise StoreError(f"map {name!r}, collection {collection!r}: expected positions of shape (rows, 2) "
                             f"with rows <= {info.count} entries, got {array.shape}")
        if not np.isfinite(array).all():
            raise StoreError(f"map {name!r}, collection {collection!r}: positions must be finite")
        arrays[collection] = array
        fingerprints[collection] = info.fingerprint
    params_json = json.dumps(dict(params or {}), sort_keys=True)

    def write(file: Any) -> None:
        group = file.require_group(MAPS_GROUP)
        if name in group:
            del group[name]
        saved = group.create_group(name)
        saved.attrs["method"] = method
        saved.attrs["params"] = params_json
        saved.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for collection, array in arrays.items():
            dataset = saved.create_dataset(collection, data=array)
            dataset.attrs["fingerprint"] = fingerprints[collection]

    store.restructure(write)


def load_map(store: EmbeddingStore, name: str) -> StoredMap | None:
    """Map ``name`` as saved, or None if the store has none by that name."""
    store.refresh()
    group = store.file.get(MAPS_GROUP)
    if group is None or name not in group:
        return None
    saved = group[name]
    return StoredMap(
        name=name,
        method=str(saved.attrs["method"]),
        created=str(saved.attrs["created"]),
        params=json.loads(str(saved.attrs["params"])),
        positions={c: np.asarray(saved[c][()], dtype=np.float32) for c in saved},
        fingerprints={c: str(saved[c].attrs["fingerprint"]) for c in saved},
    )


__all__ = ["MAPS_GROUP", "StoredMap", "save_map", "load_map"]
