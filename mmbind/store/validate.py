"""What an ``add`` checks before anything is written; each error names the collection and value.

``validate_batch`` turns the caller's vectors and per-entry lists into a ``Batch``: unit float32
vectors, one ASCII content hash per vector, and the string columns as text.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from mmbind.hashing import HASH_LENGTH
from mmbind.store.errors import StoreError
from mmbind.store.schema import CollectionInfo


@dataclass
class Batch:
    """A validated batch: unit vectors (B, dim), hashes, and per-entry text (ids "" = row number)."""

    vectors: np.ndarray
    hashes: list[str]
    ids: list[str]
    labels: list[str]
    paths: list[str]
    metas: list[str]

    def take(self, keep: list[int], first_row: int) -> tuple[np.ndarray, list[str], dict[str, list[str]]]:
        """(vectors, hashes, string columns) of the entries ``keep``, written from ``first_row``."""
        return self.vectors[keep], [self.hashes[i] for i in keep], {
            "ids": [self.ids[i] or str(first_row + j) for j, i in enumerate(keep)],
            "labels": [self.labels[i] for i in keep],
            "paths": [self.paths[i] for i in keep],
            "meta": [self.metas[i] for i in keep],
        }


def unit_vectors(vectors: Any, info: CollectionInfo) -> np.ndarray:
    """(batch, dim) float32 rows scaled to unit length; NaN, inf and zero rows are refused."""
    if hasattr(vectors, "detach"):  # a torch tensor, without importing torch
        vectors = vectors.detach().cpu().numpy()
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != info.dim:
        raise StoreError(f"collection {info.name!r} stores {info.dim}-d vectors; got an array of shape "
                         f"{vectors.shape} (expected (batch, {info.dim}))")
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        raise StoreError(f"collection {info.name!r}: vector {int(np.argmax(bad))} of the batch has NaN or inf values")
    norms = np.linalg.norm(vectors, axis=1)
    if (norms == 0).any():
        raise StoreError(f"collection {info.name!r}: vector {int(np.argmin(norms))} of the batch is all zeros "
                         "(cannot be normalised)")
    return vectors / norms[:, None]


def _one_each(values: Sequence[Any], n: int, what: str) -> list[Any]:
    values = list(values)
    if len(values) != n:
        raise StoreError(f"{what}: got {len(values)} values for {n} vectors (expected one per vector)")
    return values


def content_hashes(hashes: Sequence[str] | None, vectors: np.ndarray) -> list[str]:
    """The given hashes, checked; without them the SHA-256 of each stored float32 vector."""
    if hashes is None:
        return [hashlib.sha256(v.tobytes()).hexdigest() for v in vectors]
    hashes = _one_each(hashes, len(vectors), "hashes")
    for h in hashes:
        if not isinstance(h, str) or not h or len(h) > HASH_LENGTH or not h.isascii():
            raise StoreError(f"content hash {h!r}: expected an ASCII string of 1..{HASH_LENGTH} characters")
    return hashes


def text_column(values: Sequence[Any] | None, n: int, what: str) -> list[str]:
    """One text per vector ("" for None); paths as os.fspath, anything else as str."""
    if values is None:
        return [""] * n
    return ["" if v is None else os.fspath(v) if isinstance(v, os.PathLike) else str(v)
            for v in _one_each(values, n, what)]


def meta_column(metas: Sequence[Mapping[str, Any] | None] | None, ids: list[str], collection: str) -> list[str]:
    """One JSON object per vector ("{}" for None); a non-dict or non-JSON value is refused."""
    if metas is None:
        return ["{}"] * len(ids)
    out = []
    for i, meta in enumerate(_one_each(metas, len(ids), "metas")):
        where = f"collection {collection!r}, entry {i} (id {ids[i]!r})"
        if meta is None:
            out.append("{}")
            continue
        if not isinstance(meta, Mapping):
            raise StoreError(f"{where}: metadata must be a dict, got {type(meta).__name__}")
        try:
            out.append(json.dumps(dict(meta), sort_keys=True, ensure_ascii=False, allow_nan=False))
        except (TypeError, ValueError) as error:
            raise StoreError(f"{where}: metadata is not JSON-serialisable ({error})") from error
    return out


def validate_batch(info: CollectionInfo, vectors: Any, *, fingerprint: str, ids: Sequence[Any] | None,
                   labels: Sequence[Any] | None, paths: Sequence[Any] | None,
                   metas: Sequence[Mapping[str, Any] | None] | None, hashes: Sequence[str] | None) -> Batch:
    """Check one ``add`` against ``info``; raise StoreError naming the first problem."""
    if fingerprint != info.fingerprint:
        raise StoreError(
            f"collection {info.name!r} holds vectors of binder {info.fingerprint}; refusing vectors "
            f"of binder {fingerprint} (different embedding space): use a new collection or re-embed"
        )
    unit = unit_vectors(vectors, info)
    n = len(unit)
    id_list = text_column(ids, n, "ids")
    return Batch(unit, content_hashes(hashes, unit), id_list, text_column(labels, n, "labels"),
                 text_column(paths, n, "paths"), meta_column(metas, id_list, info.name))


__all__ = ["Batch", "validate_batch", "unit_vectors", "content_hashes", "text_column", "meta_column"]
