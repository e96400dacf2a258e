"""HDF5 embedding store: named collections of unit vectors with ids, labels, source paths, content
hashes and JSON metadata. The file format is documented in docs/store.md.

Crash safety (a killed writer leaves a readable file holding every finished batch):
  * each batch is one commit: write the rows of every dataset, flush, then bump the
    ``committed`` attribute of ``embeddings`` and flush again. Readers trust rows < committed;
    a writer opening for append truncates everything beyond it.
  * the writer runs in HDF5 SWMR mode, which orders metadata writes so the file opens at any
    moment; after a SIGKILL the superblock still says "open for write", and the next writer
    (holding the store's lock file, so no live writer exists) clears that flag.
  * structural changes (new file, new collection) are made on a copy that atomically replaces
    the store, because SWMR forbids creating objects and a non-SWMR writer is not crash-safe.
Concurrency: one writer (``<store>.lock``), any number of readers (``mode="r"``, SWMR readers)
in other processes; readers see each commit after ``refresh()`` (search refreshes itself).
"""
from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import math
import os
import re
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import h5py
import numpy as np

from mmbind.store.recovery import clear_status_flags

STORE_FORMAT = "mmbind-embedding-store"
SCHEMA_VERSION = 1
LIBVER = ("v110", "latest")  # v110 is the oldest format with SWMR
STRING_COLUMNS = ("ids", "labels", "paths", "meta")
HASH_LENGTH = 64
COLLECTION_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_SCAN_ROWS = 65536  # rows per step when scanning string columns


class StoreError(ValueError):
    """A store, collection or entry that cannot be used; the message says what was expected."""


class StoreLockedError(StoreError):
    """Another process is appending to this store."""


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


@dataclass
class AddResult:
    """Entries written and entries skipped because their content hash was already stored."""

    added: int = 0
    skipped: int = 0

    def __iadd__(self, other: "AddResult") -> "AddResult":
        self.added += other.added
        self.skipped += other.skipped
        return self


@dataclass
class EntryBatch:
    """One batch for ``add_stream``: vectors (B, D) and optional per-entry columns."""

    vectors: Any
    ids: Sequence[str] | None = None
    labels: Sequence[Any] | None = None
    paths: Sequence[Any] | None = None
    metas: Sequence[Mapping[str, Any] | None] | None = None
    hashes: Sequence[str] | None = None


def content_hash(content: Any, modality: str | None = None) -> str:
    """SHA-256 hex of an entry's content: a file's bytes (read in blocks), a text's UTF-8, raw
    bytes, or an array's dtype + shape + bytes. For the text modality a ``str`` is the text
    itself; for other modalities a ``str`` is a path."""
    digest = hashlib.sha256()
    if isinstance(content, (bytes, bytearray, memoryview)):
        digest.update(content)
    elif isinstance(content, str) and modality == "text":
        digest.update(content.encode("utf-8"))
    elif isinstance(content, (str, os.PathLike)):
        path = Path(content)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: file not found (expected a file to hash and embed)")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    else:
        if hasattr(content, "detach"):  # torch tensor, without importing torch
            content = content.detach().cpu().numpy()
        if not isinstance(content, np.ndarray):
            raise TypeError(f"cannot hash a {type(content).__name__}: expected a path, text, bytes or array")
        array = np.ascontiguousarray(content)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_swmr_writer(path: Path) -> h5py.File:
    # h5py.File cannot open straight into SWMR-write mode; the low-level call can, which leaves
    # no moment in which a kill would leave a non-SWMR (unreadable) file. HDF5's own file lock is
    # off: the writer lock file excludes other writers, and readers opened earlier must not block us.
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_LATEST)
    fapl.set_file_locking(False, True)
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDWR | h5py.h5f.ACC_SWMR_WRITE, fapl=fapl)
    return h5py.File(fid)


def _open_reader(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r", libver=LIBVER, swmr=True)
    except OSError as swmr_error:
        try:
            return h5py.File(path, "r")
        except OSError:
            raise StoreError(f"{path}: cannot open as an HDF5 embedding store ({swmr_error})") from swmr_error


def _new_collection_group(root: h5py.Group, name: str, modality: str, dim: int, fingerprint: str,
                          tau: float | None) -> None:
    group = root.create_group(name)
    group.attrs["modality"] = modality
    group.attrs["dim"] = np.int64(dim)
    group.attrs["fingerprint"] = fingerprint
    group.attrs["tau"] = np.float64("nan" if tau is None else tau)
    group.attrs["schema_version"] = np.int64(SCHEMA_VERSION)
    group.attrs["created"] = _utcnow()
    rows = max(64, (1 << 20) // (4 * dim))  # ~1 MiB chunks: large sequential reads for search
    emb = group.create_dataset("embeddings", shape=(0, dim), maxshape=(None, dim), dtype="f4", chunks=(rows, dim))
    emb.attrs["committed"] = np.int64(0)
    group.create_dataset("content_hash", shape=(0,), maxshape=(None,), dtype=f"S{HASH_LENGTH}", chunks=(1024,))
    for column in STRING_COLUMNS:
        # Strings as UTF-8 bytes + end offsets: SWMR does not support variable-length data.
        group.create_dataset(f"{column}_end", shape=(0,), maxshape=(None,), dtype="i8", chunks=(8192,))
        group.create_dataset(f"{column}_bytes", shape=(0,), maxshape=(None,), dtype="u1", chunks=(1 << 16,))


def _text_list(values: Sequence[Any] | None, n: int, what: str, default: Callable[[int], str]) -> list[str]:
    if values is None:
        return [default(i) for i in range(n)]
    values = list(values)
    if len(values) != n:
        raise StoreError(f"{what}: got {len(values)} values for {n} vectors (expected one per vector)")
    return [default(i) if v is None else os.fspath(v) if isinstance(v, os.PathLike) else str(v)
            for i, v in enumerate(values)]


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
        self.recovered = False  # True when this writer cleared flags left by a killed writer
        self._lock_fd: int | None = None
        self._file: h5py.File | None = None
        self._hashes: dict[str, set[str]] = {}
        self._committed: dict[str, int] = {}
        self._datasets: dict[str, dict[str, h5py.Dataset]] = {}  # handles, valid for the open file
        self._attrs: dict[str, dict[str, Any]] = {}  # collection attributes never change
        if mode == "r":
            if not self.path.is_file():
                raise FileNotFoundError(f"{self.path}: no such embedding store")
            self._open_read()
        else:
            self._acquire_lock()
            try:
                self._open_write()
            except BaseException:
                self.close()
                raise

    # --- opening and closing -----------------------------------------------------------------
    def _acquire_lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLockedError(
                f"{self.path}: another process is appending to this store (it holds {lock_path}); "
                "open it with mode='r' to read while it writes"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _open_read(self) -> None:
        self._forget_handles()
        self._file = _open_reader(self.path)
        self._inode = os.stat(self.path).st_ino
        self._check_format()

    def _open_write(self) -> None:
        # Copies left by a writer killed during a structural change; we hold the lock, so no
        # live writer is making one.
        for stale in self.path.parent.glob(f"{glob.escape(self.path.name)}.tmp-*"):
            stale.unlink(missing_ok=True)
        if not self.path.exists():
            self._replace_file(None)
        else:
            try:
                self.recovered = clear_status_flags(self.path)
            except ValueError as error:
                raise StoreError(f"cannot open as an HDF5 embedding store: {error}") from error
        self._forget_handles()
        try:
            self._file = _open_swmr_writer(self.path)
        except OSError as error:
            raise StoreError(f"{self.path}: cannot open for appending as an HDF5 embedding store "
                             f"(expected a store written by mmbind; HDF5 says: {error})") from error
        self._check_format()
        self._truncate_uncommitted()

    def _check_format(self) -> None:
        assert self._file is not None
        if self._file.attrs.get("format") != STORE_FORMAT or "collections" not in self._file:
            raise StoreError(f"{self.path}: not an mmbind embedding store (no format={STORE_FORMAT!r} attribute)")
        version = int(self._file.attrs.get("schema_version", 0))
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: store schema version {version} is newer than this mmbind "
                             f"reads ({SCHEMA_VERSION}); upgrade mmbind")

    def _replace_file(self, change: Callable[[h5py.File], None] | None) -> None:
        """Apply a structural change on a copy, then atomically swap it in (crash-safe)."""
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        self._forget_handles()
        if self._file is not None:
            self._file.close()
            self._file = None
        try:
            if self.path.exists():
                shutil.copyfile(self.path, tmp)
                handle = h5py.File(tmp, "r+", libver=LIBVER, locking=False)
            else:
                handle = h5py.File(tmp, "w", libver=LIBVER, locking=False)
                handle.attrs["format"] = STORE_FORMAT
                handle.attrs["schema_version"] = np.int64(SCHEMA_VERSION)
                handle.attrs["created"] = _utcnow()
                handle.create_group("collections")
            with handle:
                if change is not None:
                    change(handle)
            _fsync_path(tmp)
            os.replace(tmp, self.path)
            _fsync_path(self.path.parent)
        finally:
            tmp.unlink(missing_ok=True)

    def _truncate_uncommitted(self) -> None:
        # Rows beyond the committed count belong to a batch that never finished.
        assert self._file is not None
        changed = False
        for name in self.collections():
            group = self._group(name)
            n = int(group["embeddings"].attrs["committed"])
            self._committed[name] = n
            targets = {"embeddings": n, "content_hash": n}
            for column in STRING_COLUMNS:
                targets[f"{column}_end"] = n
                targets[f"{column}_bytes"] = int(group[f"{column}_end"][n - 1]) if n else 0
            for key, rows in targets.items():
                dataset = group[key]
                if dataset.shape[0] != rows:
                    dataset.resize(rows, axis=0)
                    changed = True
        if changed:
            self._file.flush()

    def _forget_handles(self) -> None:
        self._datasets = {}
        self._attrs = {}

    def _ds(self, collection: str, key: str) -> h5py.Dataset:
        cache = self._datasets.setdefault(collection, {})
        if key not in cache:
            cache[key] = self._group(collection)[key]
        return cache[key]

    def close(self) -> None:
        """Close the file and release the writer lock."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> "EmbeddingStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmbeddingStore({str(self.path)!r}, mode={self.mode!r})"

    def __contains__(self, collection: str) -> bool:
        return collection in self.collections()

    def refresh(self) -> None:
        """Readers: see the writer's latest commits (and reopen if it added a collection)."""
        if self.mode != "r":
            return
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            return
        if inode != self._inode:  # the writer swapped in a copy with a new collection
            if self._file is not None:
                self._file.close()
            self._open_read()

    # --- collections --------------------------------------------------------------------------
    @property
    def file(self) -> h5py.File:
        if self._file is None:
            raise StoreError(f"{self.path}: the store is closed")
        return self._file

    def collections(self) -> list[str]:
        """Names of the collections, sorted."""
        return sorted(self.file["collections"].keys())

    def _group(self, name: str) -> h5py.Group:
        root = self.file["collections"]
        if name not in root:
            if self.mode == "r":
                self.refresh()
                root = self.file["collections"]
            if name not in root:
                have = ", ".join(sorted(root.keys())) or "none"
                raise StoreError(f"{self.path}: no collection {name!r} (collections: {have})")
        return root[name]

    def create_collection(self, name: str, *, modality: str, dim: int, fingerprint: str,
                          tau: float | None = None, exist_ok: bool = False) -> CollectionInfo:
        """Create a collection (rewrites the store file once: copy + atomic rename).

        With ``exist_ok`` an existing collection is returned if its modality, dim and
        fingerprint match, else StoreError says which differs.
        """
        self._require_writer()
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
        if name in self.file["collections"]:
            info = self.info(name)
            if not exist_ok:
                raise StoreError(f"{self.path}: collection {name!r} already exists")
            for key, wanted in (("modality", modality), ("dim", int(dim)), ("fingerprint", fingerprint)):
                if getattr(info, key) != wanted:
                    raise StoreError(f"collection {name!r} exists with {key}={getattr(info, key)!r}, "
                                     f"not {wanted!r}; use another collection name")
            return info
        try:
            self._replace_file(lambda f: _new_collection_group(f["collections"], name, modality, int(dim),
                                                               fingerprint, None if tau is None else float(tau)))
        finally:
            self._file = _open_swmr_writer(self.path)  # the old file if the change failed
        self._committed[name] = 0
        self._hashes[name] = set()
        return self.info(name)

    def restructure(self, change: Callable[[h5py.File], None]) -> None:
        """Make a structural change outside the collections (new groups or datasets, such as a
        saved map, see mmbind.store.maps) the crash-safe way create_collection does: ``change``
        gets a copy of the file open for writing, and the copy atomically replaces the store."""
        self._require_writer()
        try:
            self._replace_file(change)
        finally:
            self._file = _open_swmr_writer(self.path)  # the old file if the change failed

    def info(self, collection: str) -> CollectionInfo:
        """The collection's attributes and committed entry count."""
        if collection not in self._attrs:
            self._attrs[collection] = dict(self._group(collection).attrs)
        attrs = self._attrs[collection]
        tau = float(attrs["tau"])
        return CollectionInfo(
            name=collection,
            modality=str(attrs["modality"]),
            dim=int(attrs["dim"]),
            fingerprint=str(attrs["fingerprint"]),
            tau=None if math.isnan(tau) else tau,
            schema_version=int(attrs["schema_version"]),
            created=str(attrs["created"]),
            count=self.count(collection),
        )

    def count(self, collection: str) -> int:
        """Committed entries: the only rows a reader may trust."""
        if self.mode == "a" and collection in self._committed:
            return self._committed[collection]
        if self.mode == "r":
            self.refresh()  # cheap (one stat) unless the writer swapped in a new file
        emb = self._ds(collection, "embeddings")
        if self.mode == "r":
            emb.refresh()
        return int(emb.attrs["committed"])

    # --- adding ------------------------------------------------------------------------------
    def _require_writer(self) -> None:
        if self.mode != "a":
            raise StoreError(f"{self.path}: opened read-only (mode='r'); open with mode='a' to write")

    def _hash_set(self, collection: str) -> set[str]:
        if collection not in self._hashes:
            n = self.count(collection)
            dataset = self._ds(collection, "content_hash")
            known: set[str] = set()
            for start in range(0, n, _SCAN_ROWS):
                known.update(h.decode("ascii") for h in dataset[start:min(n, start + _SCAN_ROWS)])
            self._hashes[collection] = known
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
        info = self.info(collection)
        if fingerprint != info.fingerprint:
            raise StoreError(
                f"collection {collection!r} holds vectors of binder {info.fingerprint}; refusing vectors "
                f"of binder {fingerprint} (different embedding space): use a new collection or re-embed"
            )
        if hasattr(vectors, "detach"):
            vectors = vectors.detach().cpu().numpy()
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != info.dim:
            raise StoreError(f"collection {collection!r} stores {info.dim}-d vectors; got an array of shape "
                             f"{vectors.shape} (expected (batch, {info.dim}))")
        n_in = vectors.shape[0]
        if n_in == 0:
            return AddResult()
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            raise StoreError(f"collection {collection!r}: vector {int(np.argmax(bad))} of the batch has NaN or inf values")
        norms = np.linalg.norm(vectors, axis=1)
        if (norms == 0).any():
            raise StoreError(f"collection {collection!r}: vector {int(np.argmin(norms))} of the batch is all zeros "
                             "(cannot be normalised)")
        vectors = vectors / norms[:, None]
        if hashes is None:
            hashes = [hashlib.sha256(v.tobytes()).hexdigest() for v in vectors]
        hashes = list(hashes)
        if len(hashes) != n_in:
            raise StoreError(f"hashes: got {len(hashes)} values for {n_in} vectors (expected one per vector)")
        for h in hashes:
            if not isinstance(h, str) or not h or len(h) > HASH_LENGTH or not h.isascii():
                raise StoreError(f"content hash {h!r}: expected an ASCII string of 1..{HASH_LENGTH} characters")

        id_list = _text_list(ids, n_in, "ids", lambda i: "")
        label_list = _text_list(labels, n_in, "labels", lambda i: "")
        path_list = _text_list(paths, n_in, "paths", lambda i: "")
        if metas is not None and len(metas) != n_in:
            raise StoreError(f"metas: got {len(metas)} values for {n_in} vectors (expected one per vector)")
        known = self._hash_set(collection)
        keep: list[int] = []
        batch_seen: set[str] = set()
        for i, h in enumerate(hashes):
            if h not in known and h not in batch_seen:
                keep.append(i)
                batch_seen.add(h)
        if not keep:
            return AddResult(0, n_in)
        n = self.count(collection)
        m = len(keep)
        columns = {
            "ids": [id_list[i] or str(n + j) for j, i in enumerate(keep)],
            "labels": [label_list[i] for i in keep],
            "paths": [path_list[i] for i in keep],
            "meta": [self._meta_json(None if metas is None else metas[i], i, id_list[i], collection) for i in keep],
        }
        self._write_rows(collection, n, vectors[keep], [hashes[i] for i in keep], columns)
        known.update(batch_seen)
        return AddResult(m, n_in - m)

    @staticmethod
    def _meta_json(meta: Any, i: int, entry_id: str, collection: str) -> str:
        if meta is None:
            return "{}"
        if not isinstance(meta, Mapping):
            raise StoreError(f"collection {collection!r}, entry {i} (id {entry_id!r}): metadata must be a dict, "
                             f"got {type(meta).__name__}")
        try:
            return json.dumps(dict(meta), sort_keys=True, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise StoreError(f"collection {collection!r}, entry {i} (id {entry_id!r}): metadata is not "
                             f"JSON-serialisable ({error})") from error

    def _write_rows(self, collection: str, n: int, vectors: np.ndarray, hashes: list[str],
                    columns: dict[str, list[str]]) -> None:
        m = len(vectors)
        # 1. data: every dataset is resized to exactly n + m rows (this also overwrites any rows a
        #    failed earlier batch of this session left beyond the committed count)
        emb = self._ds(collection, "embeddings")
        emb.resize(n + m, axis=0)
        emb[n:n + m] = vectors
        hash_ds = self._ds(collection, "content_hash")
        hash_ds.resize(n + m, axis=0)
        hash_ds[n:n + m] = np.array([h.encode("ascii") for h in hashes], dtype=f"S{HASH_LENGTH}")
        for column, values in columns.items():
            end_ds, bytes_ds = self._ds(collection, f"{column}_end"), self._ds(collection, f"{column}_bytes")
            base = int(end_ds[n - 1]) if n else 0
            encoded = [v.encode("utf-8") for v in values]
            ends = base + np.cumsum([len(e) for e in encoded], dtype=np.int64)
            end_ds.resize(n + m, axis=0)
            end_ds[n:n + m] = ends
            blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
            bytes_ds.resize(base + len(blob), axis=0)
            if len(blob):
                bytes_ds[base:base + len(blob)] = blob
        self.file.flush()
        # 2. commit: only now do readers (and a later writer) see the batch
        emb.attrs.modify("committed", np.int64(n + m))
        self.file.flush()
        self._committed[collection] = n + m

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
            total += result
            if on_commit is not None:
                on_commit(result, self.count(collection))
        return total

    # --- reading -----------------------------------------------------------------------------
    def _rows(self, collection: str, rows: Any) -> np.ndarray:
        n = self.count(collection)
        if rows is None:
            return np.arange(n)
        if isinstance(rows, slice):
            return np.arange(n)[rows]
        array = np.atleast_1d(np.asarray(rows))
        if array.size and (array.dtype.kind not in "iu" or array.min() < 0 or array.max() >= n):
            raise StoreError(f"collection {collection!r} has {n} entries; rows must be integers in "
                             f"0..{n - 1}, got {rows!r}")
        return array.astype(np.int64)

    def vectors(self, collection: str, rows: Any = None) -> np.ndarray:
        """Stored unit vectors of the given rows (all committed rows if None): (len(rows), D)."""
        rows = self._rows(collection, rows)
        emb = self._ds(collection, "embeddings")
        if len(rows) == 0:
            return np.empty((0, emb.shape[1]), dtype=np.float32)
        unique, inverse = np.unique(rows, return_inverse=True)
        if len(unique) == unique[-1] - unique[0] + 1:  # a contiguous range: one slab read
            data = emb[int(unique[0]):int(unique[-1]) + 1]
        else:
            data = emb[unique]  # h5py fancy indexing needs increasing unique indices
        return np.ascontiguousarray(data[inverse])

    def iter_vectors(self, collection: str, chunk_rows: int, start: int = 0,
                     stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_row, block)`` over committed rows; ``block`` is a view of one reused
        buffer (valid until the next step), so memory stays at chunk_rows x D floats."""
        n = self.count(collection) if stop is None else stop
        emb = self._ds(collection, "embeddings")
        file_rows = emb.chunks[0]
        # Whole HDF5 chunks copied straight into the buffer skip HDF5's selection machinery
        # (about 1.4x faster); possible when reads are chunk-aligned and the data unfiltered.
        direct = (chunk_rows % file_rows == 0 and start % file_rows == 0 and emb.id.get_create_plist().get_nfilters() == 0
                  and emb.dtype == np.dtype("<f4") and sys.byteorder == "little")
        rows = max(1, min(chunk_rows, n - start))
        if direct:
            rows = -(-rows // file_rows) * file_rows  # room for a last, partly used chunk
        buffer = np.empty((rows, emb.shape[1]), dtype=np.float32)
        raw = buffer.reshape(-1).view(np.uint8)
        chunk_bytes = file_rows * emb.shape[1] * 4
        for first in range(start, n, chunk_rows):
            last = min(n, first + chunk_rows)
            if direct:
                for i, row in enumerate(range(first, last, file_rows)):
                    emb.id.read_direct_chunk((row, 0), out=raw[i * chunk_bytes:(i + 1) * chunk_bytes])
            else:
                emb.read_direct(buffer, source_sel=np.s_[first:last], dest_sel=np.s_[0:last - first])
            yield first, buffer[:last - first]

    def _strings(self, collection: str, column: str, rows: np.ndarray) -> dict[int, str]:
        end_ds, bytes_ds = self._ds(collection, f"{column}_end"), self._ds(collection, f"{column}_bytes")
        if self.mode == "r":
            end_ds.refresh()
            bytes_ds.refresh()
        rows = np.unique(rows)
        if len(rows) == 0:
            return {}
        needed = np.unique(np.concatenate([rows, rows[rows > 0] - 1]))
        ends = dict(zip(needed.tolist(), end_ds[needed].tolist()))
        spans = [(int(r), ends.get(int(r) - 1, 0) if r > 0 else 0, ends[int(r)]) for r in rows]
        out: dict[int, str] = {}
        i = 0
        while i < len(spans):  # merge nearby byte ranges into one read
            j = i
            while j + 1 < len(spans) and spans[j + 1][1] - spans[j][2] < (1 << 16):
                j += 1
            lo, hi = spans[i][1], spans[j][2]
            blob = bytes_ds[lo:hi].tobytes() if hi > lo else b""
            for row, a, b in spans[i:j + 1]:
                out[row] = blob[a - lo:b - lo].decode("utf-8")
            i = j + 1
        return out

    def entries(self, collection: str, rows: Any) -> list[dict[str, Any]]:
        """The stored columns of the given rows: corpus_id, id, label, path, meta, content_hash."""
        rows = self._rows(collection, rows)
        if len(rows) == 0:
            return []
        columns = {c: self._strings(collection, c, rows) for c in STRING_COLUMNS}
        unique = np.unique(rows)
        hash_ds = self._ds(collection, "content_hash")
        if self.mode == "r":
            hash_ds.refresh()
        hashes = dict(zip(unique.tolist(), (h.decode("ascii") for h in hash_ds[unique])))
        result = []
        for row in rows.tolist():
            result.append({
                "corpus_id": row,
                "id": columns["ids"][row],
                "label": columns["labels"][row] or None,
                "path": columns["paths"][row] or None,
                "meta": json.loads(columns["meta"][row]) if columns["meta"][row] else {},
                "content_hash": hashes[row],
            })
        return result

    def find_ids(self, collection: str, ids: Iterable[str]) -> dict[str, int]:
        """Row of the first entry with each id (ids not found are absent); scans the id column."""
        wanted = set(ids)
        found: dict[str, int] = {}
        n = self.count(collection)
        end_ds, bytes_ds = self._ds(collection, "ids_end"), self._ds(collection, "ids_bytes")
        if self.mode == "r":
            end_ds.refresh()
            bytes_ds.refresh()
        for start in range(0, n, _SCAN_ROWS):
            if len(found) == len(wanted):
                break
            ends = end_ds[start:min(n, start + _SCAN_ROWS)]
            base = int(end_ds[start - 1]) if start else 0
            blob = bytes_ds[base:int(ends[-1])].tobytes()
            previous = 0
            for offset, end in enumerate((ends - base).tolist()):
                value = blob[previous:end].decode("utf-8")
                previous = end
                if value in wanted and value not in found:
                    found[value] = start + offset
        return found

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

    # --- search ------------------------------------------------------------------------------
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
        from mmbind.search.topk import search_entries

        return search_entries(self, query_vectors, collection, top_k=top_k, memory_budget=memory_budget,
                              index=index, binder=binder, vectors=vectors, **index_options)


__all__ = [
    "EmbeddingStore", "CollectionInfo", "AddResult", "EntryBatch", "StoreError", "StoreLockedError",
    "content_hash", "SCHEMA_VERSION", "STORE_FORMAT",
]
