"""``EmbeddingStore``: an HDF5 file of named collections of unit vectors with ids, labels, source
paths, content hashes and JSON metadata (docs/store.md).

The facade of the store's parts: the file's life (file.py), its format (schema.py), string
columns (codec.py), one collection's rows (collection.py) and the checks of an add (validate.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import h5py
import numpy as np

from mmbind.store.collection import Collection
from mmbind.store.errors import StoreError
from mmbind.store.file import StoreFile
from mmbind.store.schema import CollectionInfo, check_collection, create_collection_group
from mmbind.store.validate import validate_batch


@dataclass
class AddResult:
    """Entries written and entries skipped because their content hash was already stored;
    ``embed_inputs`` also fills in entries overwritten in place (``replaced``), the ids already
    stored with other content and left as they were (``changed``), and the inputs it could not
    read with ``skip_bad`` (``bad``: (name, reason) pairs)."""

    added: int = 0
    skipped: int = 0
    replaced: int = 0
    changed: list[str] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)

    def __iadd__(self, other: "AddResult") -> "AddResult":
        self.added += other.added
        self.skipped += other.skipped
        self.replaced += other.replaced
        self.changed += other.changed
        self.bad += other.bad
        return self


@dataclass
class EntryBatch:
    """One batch for ``add_stream``: vectors (B, D) and optional per-entry columns.

    ``skipped`` counts entries the producer already dropped because the collection holds their
    content hash (``embed_inputs`` drops them before encoding); they count in AddResult.skipped.
    """

    vectors: Any
    ids: Sequence[str] | None = None
    labels: Sequence[Any] | None = None
    paths: Sequence[Any] | None = None
    metas: Sequence[Mapping[str, Any] | None] | None = None
    hashes: Sequence[str] | None = None
    skipped: int = 0


class EmbeddingStore:
    """An HDF5 file of named embedding collections.

    ``EmbeddingStore(path)`` opens (or creates) the store for appending; one writer at a time.
    ``EmbeddingStore(path, mode="r")`` opens it read-only; readers may run while a writer appends
    (in other processes: HDF5 lets one process hold a file either for reading or for writing).
    """

    def __init__(self, path: str | Path, mode: str = "a"):
        if mode not in ("a", "r"):
            raise ValueError(f"mode must be 'a' (append) or 'r' (read), got {mode!r}")
        self.path = Path(path)
        self.mode = mode
        self._collections: dict[str, Collection] = {}  # handles, valid for the open file
        self._hashes: dict[str, set[str]] = {}  # the writer's stored content hashes, per collection
        self._id_rows: dict[str, dict[str, int]] = {}  # the writer's id -> first row, per collection
        self._file = StoreFile(self.path, mode)

    def close(self) -> None:
        """Close the file and release the writer lock."""
        self._collections = {}
        self._file.close()

    def __enter__(self) -> "EmbeddingStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmbeddingStore({str(self.path)!r}, mode={self.mode!r})"

    def __contains__(self, collection: str) -> bool:
        return collection in self.collections()

    @property
    def file(self) -> h5py.File:
        """The open h5py file (for reading its datasets directly; docs/store.md has the layout)."""
        return self._file.h5

    def refresh(self) -> None:
        """Readers: see the writer's latest commits (and reopen if it added a collection)."""
        if self._file.reopen_if_replaced():
            self._collections = {}

    # --- collections ---------------------------------------------------------------------------
    def collections(self) -> list[str]:
        """Names of the collections, sorted."""
        return sorted(self.file["collections"].keys())

    def _collection(self, name: str) -> Collection:
        if self.mode == "r":
            self.refresh()  # cheap (one stat) unless the writer swapped in a new file
        if name not in self._collections:
            root = self.file["collections"]
            if name not in root:
                have = ", ".join(sorted(root.keys())) or "none"
                raise StoreError(f"{self.path}: no collection {name!r} (collections: {have})")
            self._collections[name] = Collection(root[name], reader=self.mode == "r")
        return self._collections[name]

    def create_collection(self, name: str, *, modality: str, dim: int, fingerprint: str,
                          tau: float | None = None, exist_ok: bool = False) -> CollectionInfo:
        """Create a collection (rewrites the store file once: copy + atomic rename).

        With ``exist_ok`` an existing collection is returned if its modality, dim and
        fingerprint match, else StoreError says which differs.
        """
        self._require_writer()
        check_collection(name, modality, dim, fingerprint, tau)
        if name in self.file["collections"]:
            info = self.info(name)
            if not exist_ok:
                raise StoreError(f"{self.path}: collection {name!r} already exists")
            for key, wanted in (("modality", modality), ("dim", int(dim)), ("fingerprint", fingerprint)):
                if getattr(info, key) != wanted:
                    raise StoreError(f"collection {name!r} exists with {key}={getattr(info, key)!r}, "
                                     f"not {wanted!r}; use another collection name")
            return info
        self._collections = {}
        self._file.change(lambda f: create_collection_group(f["collections"], name, modality, int(dim),
                                                            fingerprint, None if tau is None else float(tau)))
        self._hashes[name] = set()
        self._id_rows[name] = {}
        return self.info(name)

    def restructure(self, change: Callable[[h5py.File], None]) -> None:
        """Make a structural change outside the collections (new groups or datasets, such as a
        saved map, see mmbind.store.maps) the crash-safe way create_collection does: ``change``
        gets a copy of the file open for writing, and the copy atomically replaces the store."""
        self._require_writer()
        self._collections = {}
        self._file.change(change)

    def info(self, collection: str) -> CollectionInfo:
        """The collection's attributes and committed entry count."""
        return self._collection(collection).info()

    def count(self, collection: str) -> int:
        """Committed entries: the only rows a reader may trust."""
        return self._collection(collection).count()

    def read_chunk_rows(self, collection: str) -> int:
        """Rows per HDF5 chunk of the collection's vectors: ``iter_vectors`` with a multiple of
        it copies whole chunks (the fastest read)."""
        return self._collection(collection).read_chunk_rows

    # --- adding --------------------------------------------------------------------------------
    def _require_writer(self) -> None:
        if self.mode != "a":
            raise StoreError(f"{self.path}: opened read-only (mode='r'); open with mode='a' to write")

    def _hash_set(self, collection: str) -> set[str]:
        if collection not in self._hashes:
            self._hashes[collection] = self._collection(collection).all_hashes()
        return self._hashes[collection]

    def has_hashes(self, collection: str, hashes: Sequence[str]) -> list[bool]:
        """Which content hashes are already stored (to skip work before encoding)."""
        if self.mode == "r":
            self._hashes.pop(collection, None)  # the writer may have added some
        known = self._hash_set(collection)
        return [h in known for h in hashes]

    def add(self, collection: str, vectors: Any, *, fingerprint: str, ids: Sequence[str] | None = None,
            labels: Sequence[Any] | None = None, paths: Sequence[Any] | None = None,
            metas: Sequence[Mapping[str, Any] | None] | None = None,
            hashes: Sequence[str] | None = None) -> AddResult:
        """Append one batch as one commit; entries whose content hash is stored are skipped.

        ``fingerprint`` is the binder's that made the vectors; it must equal the collection's.
        Vectors are l2-normalised before storing. Without ``hashes`` the content hash is the
        SHA-256 of the normalised float32 vector; without ``ids`` an entry's id is its row number.
        Labels are stored as text.
        """
        self._require_writer()
        part = self._collection(collection)
        batch = validate_batch(part.info(), vectors, fingerprint=fingerprint, ids=ids, labels=labels,
                               paths=paths, metas=metas, hashes=hashes)
        known = self._hash_set(collection)
        keep: list[int] = []  # the first entry of each hash not stored yet, in batch order
        new: set[str] = set()
        for i, h in enumerate(batch.hashes):
            if h not in known and h not in new:
                keep.append(i)
                new.add(h)
        if keep:
            first = part.count()
            vectors, kept_hashes, columns = batch.take(keep, first_row=first)
            self._write(lambda: part.append(vectors, kept_hashes, columns))
            known.update(new)
            if collection in self._id_rows:
                for row, entry_id in enumerate(columns["ids"], first):
                    self._id_rows[collection].setdefault(entry_id, row)
        return AddResult(len(keep), len(batch.hashes) - len(keep))

    def _write(self, write: Callable[[], None]) -> None:
        """Run a write; if it fails (a full disk), the file is dropped without HDF5 writing more,
        and StoreError says what was kept and how to resume."""
        try:
            write()
        except (OSError, RuntimeError) as error:
            self._collections = {}
            self._hashes = {}
            self._id_rows = {}
            raise self._file.abandon(error) from error

    def replace(self, collection: str, rows: Sequence[int], vectors: Any, *, fingerprint: str,
                hashes: Sequence[str]) -> None:
        """Overwrite the vectors and content hashes of existing ``rows`` (an entry whose input
        changed, ``mmbind embed --replace``); their ids, labels, paths and metadata stay."""
        self._require_writer()
        part = self._collection(collection)
        rows = [int(r) for r in part.rows(list(rows))]
        batch = validate_batch(part.info(), vectors, fingerprint=fingerprint, ids=None, labels=None, paths=None,
                               metas=None, hashes=hashes)
        known = self._hash_set(collection)
        old = part.content_hashes(np.asarray(rows, dtype=np.int64))
        self._write(lambda: part.replace(rows, batch.vectors, batch.hashes))
        known.difference_update(old[r] for r in rows)
        known.update(batch.hashes)

    def delete_collection(self, name: str) -> None:
        """Delete a collection and its entries (rewrites the store file once, like creating one)."""
        self._require_writer()
        if name not in self.file["collections"]:
            raise StoreError(f"{self.path}: no collection {name!r} to delete")
        self._collections = {}
        self._hashes.pop(name, None)
        self._id_rows.pop(name, None)

        def delete(f: h5py.File) -> None:
            del f["collections"][name]

        self._file.change(delete)

    def add_stream(self, collection: str, batches: Iterable[EntryBatch | Mapping[str, Any]], *,
                   fingerprint: str, on_commit: Callable[[AddResult, int], None] | None = None) -> AddResult:
        """Append batches from an iterable, one commit each; ``on_commit(batch_result, count)``
        runs after each commit. Memory holds one batch at a time."""
        total = AddResult()
        for batch in batches:
            if isinstance(batch, Mapping):
                batch = EntryBatch(**batch)
            result = self.add(collection, batch.vectors, fingerprint=fingerprint, ids=batch.ids,
                              labels=batch.labels, paths=batch.paths, metas=batch.metas, hashes=batch.hashes)
            result.skipped += batch.skipped
            total += result
            if on_commit is not None:
                on_commit(result, self.count(collection))
        return total

    # --- reading -------------------------------------------------------------------------------
    def vectors(self, collection: str, rows: Any = None) -> np.ndarray:
        """Stored unit vectors of the given rows (all committed rows if None): (len(rows), D)."""
        part = self._collection(collection)
        return part.vectors(part.rows(rows))

    def iter_vectors(self, collection: str, chunk_rows: int, start: int = 0, stop: int | None = None,
                     prefetch: bool = False, mapped: bool = True) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_row, block)`` over committed rows, blocks of at most ``chunk_rows`` rows,
        each valid until the next step, so memory stays at two blocks however large the
        collection. Blocks are read-only views of the file mapped into memory (no copy) where the
        layout allows; otherwise (or ``mapped=False``) chunks are copied into one reused buffer,
        and with ``prefetch`` the next block is read in a thread while the caller uses this one."""
        part = self._collection(collection)
        return part.iter_vectors(chunk_rows, start, part.count() if stop is None else stop, prefetch, mapped)

    def entries(self, collection: str, rows: Any) -> list[dict[str, Any]]:
        """The stored columns of the given rows: corpus_id, id, label, path, meta, content_hash."""
        part = self._collection(collection)
        rows = part.rows(rows)
        if len(rows) == 0:
            return []
        ids, labels, paths, metas = (part.strings(c, rows) for c in ("ids", "labels", "paths", "meta"))
        hashes = part.content_hashes(rows)
        return [{"corpus_id": row, "id": ids[row], "label": labels[row] or None, "path": paths[row] or None,
                 "meta": json.loads(metas[row]) if metas[row] else {}, "content_hash": hashes[row]}
                for row in rows.tolist()]

    def iter_ids(self, collection: str) -> Iterator[tuple[int, str]]:
        """``(row, id)`` of every committed entry, in row order (read in bounded steps)."""
        part = self._collection(collection)
        if part.reader:
            part.columns["ids"].refresh()
        return part.columns["ids"].scan(part.count())

    def column(self, collection: str, name: str) -> list[str]:
        """One string column ("ids", "labels", "paths" or "meta" as JSON text) of every committed
        row, in row order, "" where none: a scan that decodes no other column (``entries`` of
        100,000 rows takes seconds, a column a tenth of one)."""
        part = self._collection(collection)
        if name not in part.columns:
            raise StoreError(f"no string column {name!r} (columns: {', '.join(part.columns)})")
        return part.values(name)

    def find_ids(self, collection: str, ids: Iterable[str]) -> dict[str, int]:
        """Row of the first entry with each id (ids not found are absent); scans the id column
        (a writer scans once, then keeps the ids in memory)."""
        ids = set(ids)
        if self.mode == "r":
            return self._collection(collection).find("ids", ids)
        if collection not in self._id_rows:
            rows: dict[str, int] = {}
            for row, entry_id in self.iter_ids(collection):
                rows.setdefault(entry_id, row)
            self._id_rows[collection] = rows
        known = self._id_rows[collection]
        return {i: known[i] for i in ids if i in known}

    def resolve_ref(self, ref: str) -> tuple[str, int]:
        """``collection/<id>`` -> (collection, row). ``<id>`` is an entry id; if no entry has that
        id and it is a whole number, it is the row; ``collection/#<row>`` is always the row."""
        collection, sep, key = ref.partition("/")
        if not sep or not collection or not key:
            raise StoreError(f"entry reference {ref!r}: expected collection/<id> or collection/#<row>")
        n = self.count(collection)
        if key.startswith("#"):
            if not key[1:].isdigit():
                raise StoreError(f"entry reference {ref!r}: expected a row number after '#'")
            row = int(key[1:])
        else:
            row = self.find_ids(collection, [key]).get(key, -1)
            if row < 0:
                if not key.isdigit():
                    raise StoreError(f"entry reference {ref!r}: no entry with id {key!r} in collection {collection!r}")
                row = int(key)
        if not 0 <= row < n:
            raise StoreError(f"entry reference {ref!r}: row {row} is out of range (collection {collection!r} "
                             f"has {n} entries)")
        return collection, row

    # --- search --------------------------------------------------------------------------------
    def search(self, query_vectors: Any, collection: str, top_k: int = 10, *,
               memory_budget: int | None = None, index: str | None = None, binder: Any = None,
               vectors: Mapping[str, Any] | None = None, **index_options: Any) -> list[list[dict[str, Any]]]:
        """Top-k entries of ``collection`` for each query, best first.

        Queries: an array (D,) or (Q, D), or expression strings (``"id:audio/3"``,
        ``"text:seven"``, ``"0.5*audio:rain.wav + 0.5*text:'a dog'"``; encoding files or text
        needs ``binder``). Scores are cosine similarities. ``index=None`` streams the file in
        chunks that fit ``memory_budget`` bytes; ``index="faiss"`` uses a saved FAISS index.
        Returns ``[[{"corpus_id", "id", "score", "label", "path", "meta"}, ...], ...]``.
        """
        from mmbind.search.query import search_entries

        return search_entries(self, query_vectors, collection, top_k=top_k, memory_budget=memory_budget,
                              index=index, binder=binder, vectors=vectors, **index_options)


__all__ = ["EmbeddingStore", "AddResult", "EntryBatch"]
