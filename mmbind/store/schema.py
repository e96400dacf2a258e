"""The store's file format (docs/store.md): format constants, the layout of a collection group,
and a collection's attributes as a ``CollectionInfo``.

::

    /                      attrs format, schema_version, created
    /collections/<name>/   attrs modality, dim, fingerprint, tau, schema_version, created
        embeddings         float32 (N, dim), attr committed: rows < committed are complete
        content_hash       |S64 (N,)
        ids, labels, paths, meta   string columns (mmbind.store.codec)
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from mmbind.hashing import HASH_LENGTH
from mmbind.store.codec import create_column
from mmbind.store.errors import StoreError

STORE_FORMAT = "mmbind-embedding-store"
SCHEMA_VERSION = 1
LIBVER = ("v110", "latest")  # v110 is the oldest HDF5 file format with SWMR
STRING_COLUMNS = ("ids", "labels", "paths", "meta")
COLLECTION_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_VECTOR_CHUNK_BYTES = 1 << 20  # ~1 MiB chunks of vectors: large sequential reads for search
_MIN_VECTOR_CHUNK_ROWS = 64  # very wide vectors still get several rows per chunk
_HASH_CHUNK_ROWS = 1024  # 64 KiB chunks of hashes


@dataclass(frozen=True)
class CollectionInfo:
    """A collection's recorded attributes; ``count`` is the number of committed entries."""

    name: str
    modality: str
    dim: int
    fingerprint: str
    tau: float | None
    schema_version: int
    created: str
    count: int


def _utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def init_store(file: h5py.File) -> None:
    """Make an empty HDF5 file an empty store."""
    file.attrs["format"] = STORE_FORMAT
    file.attrs["schema_version"] = np.int64(SCHEMA_VERSION)
    file.attrs["created"] = _utcnow()
    file.create_group("collections")


def check_store(file: h5py.File, path: Path) -> None:
    """Raise StoreError unless ``file`` is a store this version of mmbind reads."""
    if file.attrs.get("format") != STORE_FORMAT or "collections" not in file:
        raise StoreError(f"{path}: not an mmbind embedding store (no format={STORE_FORMAT!r} attribute)")
    version = int(file.attrs.get("schema_version", 0))
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path}: store schema version {version} is newer than this mmbind "
                         f"reads ({SCHEMA_VERSION}); upgrade mmbind")


def check_collection(name: Any, modality: Any, dim: Any, fingerprint: Any, tau: Any) -> None:
    """Raise StoreError naming the first argument a new collection cannot have."""
    if not isinstance(name, str) or not COLLECTION_NAME.match(name):
        raise StoreError(f"collection name {name!r}: expected letters, digits, '_', '.', '-' "
                         "(up to 128 characters, not starting with '.' or '-')")
    if not isinstance(modality, str) or not modality:
        raise StoreError(f"collection {name!r}: modality must be a non-empty string, got {modality!r}")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim <= 0:
        raise StoreError(f"collection {name!r}: dim must be a positive integer, got {dim!r}")
    if not isinstance(fingerprint, str) or not fingerprint:
        raise StoreError(f"collection {name!r}: fingerprint must be a non-empty string, got {fingerprint!r}")
    if tau is not None and not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau > 0):
        raise StoreError(f"collection {name!r}: tau must be a positive number or None, got {tau!r}")


def create_collection_group(root: h5py.Group, name: str, modality: str, dim: int, fingerprint: str,
                            tau: float | None) -> None:
    """Add an empty collection to the ``collections`` group (a structural change: on a copy)."""
    group = root.create_group(name)
    group.attrs["modality"] = modality
    group.attrs["dim"] = np.int64(dim)
    group.attrs["fingerprint"] = fingerprint
    group.attrs["tau"] = np.float64("nan" if tau is None else tau)
    group.attrs["schema_version"] = np.int64(SCHEMA_VERSION)
    group.attrs["created"] = _utcnow()
    rows = max(_MIN_VECTOR_CHUNK_ROWS, _VECTOR_CHUNK_BYTES // (4 * dim))
    embeddings = group.create_dataset("embeddings", shape=(0, dim), maxshape=(None, dim), dtype="f4",
                                      chunks=(rows, dim))
    embeddings.attrs["committed"] = np.int64(0)
    group.create_dataset("content_hash", shape=(0,), maxshape=(None,), dtype=f"S{HASH_LENGTH}",
                         chunks=(_HASH_CHUNK_ROWS,))
    for column in STRING_COLUMNS:
        create_column(group, column)


def collection_info(name: str, attrs: Mapping[str, Any], count: int) -> CollectionInfo:
    """A CollectionInfo from a collection group's attributes."""
    tau = float(attrs["tau"])
    return CollectionInfo(
        name=name,
        modality=str(attrs["modality"]),
        dim=int(attrs["dim"]),
        fingerprint=str(attrs["fingerprint"]),
        tau=None if math.isnan(tau) else tau,
        schema_version=int(attrs["schema_version"]),
        created=str(attrs["created"]),
        count=count,
    )


def committed_count(group: h5py.Group) -> int:
    """Rows of a collection group that a commit finished: the only rows to trust."""
    return int(group["embeddings"].attrs["committed"])


__all__ = [
    "STORE_FORMAT", "SCHEMA_VERSION", "LIBVER", "STRING_COLUMNS", "HASH_LENGTH", "COLLECTION_NAME",
    "CollectionInfo", "init_store", "check_store", "check_collection", "create_collection_group",
    "collection_info", "committed_count",
]
