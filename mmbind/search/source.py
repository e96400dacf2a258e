"""What search reads from a store, as a Protocol: ``EmbeddingStore`` has these methods. Search
depends on this and not on the store module, whose ``search()`` calls into this package."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Protocol

import numpy as np

if TYPE_CHECKING:
    from mmbind.store.schema import CollectionInfo


class VectorStore(Protocol):
    """Named collections of unit vectors with stored entries (see docs/store.md)."""

    path: Path

    def info(self, collection: str) -> CollectionInfo: ...

    def read_chunk_rows(self, collection: str) -> int: ...

    def iter_vectors(self, collection: str, chunk_rows: int, start: int = 0, stop: int | None = None,
                     prefetch: bool = False, mapped: bool = True) -> Iterator[tuple[int, np.ndarray]]: ...

    def vectors(self, collection: str, rows: Any = None) -> np.ndarray: ...

    def entries(self, collection: str, rows: Any) -> list[dict[str, Any]]: ...

    def resolve_ref(self, ref: str) -> tuple[str, int]: ...

    def find_ids(self, collection: str, ids: Iterable[str]) -> dict[str, int]: ...


__all__ = ["VectorStore"]
