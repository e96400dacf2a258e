"""The rows of one collection in an open store file: the committed count, appending a batch as
one commit, cutting what a killed writer left past the last commit, and reading rows.

The commit protocol (crash safety, docs/store.md): write every dataset's rows, flush, then bump
the ``committed`` attribute of ``embeddings`` and flush again. Readers trust rows < committed.
"""
from __future__ import annotations

import sys
from typing import Any, Iterator

import h5py
import numpy as np

from mmbind.hashing import HASH_LENGTH
from mmbind.store.codec import SCAN_ROWS, StringColumn
from mmbind.store.errors import StoreError
from mmbind.store.mapped import chunk_spans, iter_mapped
from mmbind.store.schema import STRING_COLUMNS, CollectionInfo, collection_info, committed_count


class Collection:
    """Handles on one collection group; ``reader`` is True for an SWMR reader, which refreshes
    its view of the writer's flushes before reading."""

    def __init__(self, group: h5py.Group, reader: bool):
        self.name = group.name.rsplit("/", 1)[-1]
        self.reader = reader
        self.attrs = dict(group.attrs)  # a collection's attributes never change
        self.embeddings = group["embeddings"]
        self.hashes = group["content_hash"]
        self.columns = {name: StringColumn(group, name) for name in STRING_COLUMNS}
        self._committed = committed_count(group)

    def info(self) -> CollectionInfo:
        return collection_info(self.name, self.attrs, self.count())

    def count(self) -> int:
        """Committed rows (a reader re-reads the writer's latest commit)."""
        if self.reader:
            self.embeddings.refresh()
            self._committed = int(self.embeddings.attrs["committed"])
        return self._committed

    # --- writing ---------------------------------------------------------------------------------
    def append(self, vectors: np.ndarray, hashes: list[str], columns: dict[str, list[str]]) -> None:
        """Write rows count().. as one commit: only after it do readers (and a later writer) see them."""
        n, m = self._committed, len(vectors)
        # every dataset is resized to exactly n + m rows, which also overwrites any rows a failed
        # earlier batch of this session left beyond the committed count
        self.embeddings.resize(n + m, axis=0)
        self.embeddings[n:n + m] = vectors
        self.hashes.resize(n + m, axis=0)
        self.hashes[n:n + m] = np.array([h.encode("ascii") for h in hashes], dtype=f"S{HASH_LENGTH}")
        for name, values in columns.items():
            self.columns[name].append(n, values)
        self.embeddings.file.flush()
        self.embeddings.attrs.modify("committed", np.int64(n + m))
        self.embeddings.file.flush()
        self._committed = n + m

    def replace(self, rows: list[int], vectors: np.ndarray, hashes: list[str]) -> None:
        """Overwrite the vectors and content hashes of committed ``rows`` in place (``--replace``:
        an id whose content changed); the other columns stay."""
        order = np.argsort(rows)
        rows_sorted = np.asarray(rows, dtype=np.int64)[order]
        self.embeddings[rows_sorted] = vectors[order]
        self.hashes[rows_sorted] = np.array([hashes[i].encode("ascii") for i in order], dtype=f"S{HASH_LENGTH}")
        self.embeddings.file.flush()

    def verify(self) -> str | None:
        """What is wrong with the committed rows (None if nothing): every vector must be a unit
        vector, every content hash set, every string column readable to its end. Reads the whole
        collection: for checking a repaired file, not for every open."""
        n = self.count()
        if self.embeddings.shape[0] < n or self.hashes.shape[0] < n:
            return f"{n} entries committed but fewer rows stored"
        for start in range(0, n, SCAN_ROWS):
            stop = min(n, start + SCAN_ROWS)
            norms = np.linalg.norm(self.embeddings[start:stop], axis=1)
            bad = np.flatnonzero(~(np.abs(norms - 1) < 1e-3))
            if len(bad):
                return f"entry {start + int(bad[0])} has no unit vector (its data is missing)"
            empty = np.flatnonzero(self.hashes[start:stop] == b"")
            if len(empty):
                return f"entry {start + int(empty[0])} has no content hash (its data is missing)"
        for name, column in self.columns.items():
            try:
                for _ in column.scan(n):
                    pass
            except (ValueError, IndexError, UnicodeDecodeError, OSError) as error:
                return f"column {name!r} cannot be read ({error})"
        return None

    def truncate(self) -> bool:
        """Drop the rows of a batch that never committed; True if there were any."""
        n = self._committed
        cut = False
        for dataset in (self.embeddings, self.hashes):
            if dataset.shape[0] != n:
                dataset.resize(n, axis=0)
                cut = True
        for column in self.columns.values():
            cut |= column.truncate(n)
        return cut

    # --- reading ---------------------------------------------------------------------------------
    def rows(self, rows: Any) -> np.ndarray:
        """Row numbers from None (all committed rows), a slice, or integers (checked in range)."""
        n = self.count()
        if rows is None:
            return np.arange(n)
        if isinstance(rows, slice):
            return np.arange(n)[rows]
        array = np.atleast_1d(np.asarray(rows))
        if array.size and (array.dtype.kind not in "iu" or array.min() < 0 or array.max() >= n):
            raise StoreError(f"collection {self.name!r} has {n} entries; rows must be integers in "
                             f"0..{n - 1}, got {rows!r}")
        return array.astype(np.int64)

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), dim) float32."""
        if len(rows) == 0:
            return np.empty((0, self.embeddings.shape[1]), dtype=np.float32)
        unique, inverse = np.unique(rows, return_inverse=True)
        if len(unique) == unique[-1] - unique[0] + 1:  # a contiguous range: one slab read
            data = self.embeddings[int(unique[0]):int(unique[-1]) + 1]
        else:
            data = self.embeddings[unique]  # h5py fancy indexing needs increasing unique indices
        return np.ascontiguousarray(data[inverse])

    @property
    def read_chunk_rows(self) -> int:
        """Rows per HDF5 chunk of the vectors: reads aligned to it copy whole chunks."""
        return int(self.embeddings.chunks[0])

    def iter_vectors(self, chunk_rows: int, start: int, stop: int, prefetch: bool = False, mapped: bool = True
                     ) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_row, block)`` over rows [start, stop), blocks of at most ``chunk_rows`` rows,
        each valid until the next step. ``mapped`` (where the layout allows, mmbind.store.mapped):
        read-only views of the file mapped into memory, no copy. Otherwise a reused buffer the
        chunks are copied into; with ``prefetch`` (and more than one block) a reader thread fills
        a second buffer with the next block while the caller works on this one (numpy's matrix
        products release the GIL); memory is then two blocks."""
        spans = chunk_spans(self.embeddings, start, stop, chunk_rows) if mapped and stop > start else None
        if spans is not None:
            blocks = iter_mapped(self.embeddings, spans)
            try:
                first_block = next(blocks)
            except OSError:  # a file system that cannot map files: copy instead
                pass
            else:
                yield first_block
                yield from blocks
                return
        emb = self.embeddings
        file_rows = self.read_chunk_rows
        # Whole HDF5 chunks copied straight into the buffer skip HDF5's selection machinery
        # (about 1.4x faster); possible when reads are chunk-aligned and the data unfiltered.
        direct = (chunk_rows % file_rows == 0 and start % file_rows == 0
                  and emb.id.get_create_plist().get_nfilters() == 0
                  and emb.dtype == np.dtype("<f4") and sys.byteorder == "little")
        rows = max(1, min(chunk_rows, stop - start))
        if direct:
            rows = -(-rows // file_rows) * file_rows  # room for a last, partly used chunk
        firsts = list(range(start, stop, chunk_rows))
        buffers = [np.empty((rows, emb.shape[1]), dtype=np.float32) for _ in range(2 if prefetch and len(firsts) > 1
                                                                                 else 1)]
        chunk_bytes = file_rows * emb.shape[1] * 4

        def read(first: int, buffer: np.ndarray) -> np.ndarray:
            last = min(stop, first + chunk_rows)
            if direct:
                raw = buffer.reshape(-1).view(np.uint8)
                for i, row in enumerate(range(first, last, file_rows)):
                    emb.id.read_direct_chunk((row, 0), out=raw[i * chunk_bytes:(i + 1) * chunk_bytes])
            else:
                emb.read_direct(buffer, source_sel=np.s_[first:last], dest_sel=np.s_[0:last - first])
            return buffer[:last - first]

        if len(buffers) == 1:
            for first in firsts:
                yield first, read(first, buffers[0])
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="mmbind-read") as reader:
            pending = reader.submit(read, firsts[0], buffers[0])
            for i, first in enumerate(firsts):
                block = pending.result()
                if i + 1 < len(firsts):  # the other buffer is free: the caller is done with it
                    pending = reader.submit(read, firsts[i + 1], buffers[(i + 1) % 2])
                yield first, block

    def strings(self, column: str, rows: np.ndarray) -> dict[int, str]:
        """One string column's values of ``rows``, by row."""
        if self.reader:
            self.columns[column].refresh()
        return self.columns[column].read(rows)

    def content_hashes(self, rows: np.ndarray) -> dict[int, str]:
        """The content hashes of ``rows``, by row."""
        if self.reader:
            self.hashes.refresh()
        unique = np.unique(rows)
        return dict(zip(unique.tolist(), (h.decode("ascii") for h in self.hashes[unique])))

    def all_hashes(self) -> set[str]:
        """Every committed content hash, read SCAN_ROWS at a time."""
        n = self.count()
        if self.reader:
            self.hashes.refresh()
        known: set[str] = set()
        for start in range(0, n, SCAN_ROWS):
            known.update(h.decode("ascii") for h in self.hashes[start:min(n, start + SCAN_ROWS)])
        return known

    def values(self, column: str) -> list[str]:
        """Every committed row's value of one string column, in row order (a scan)."""
        if self.reader:
            self.columns[column].refresh()
        return [value for _, value in self.columns[column].scan(self.count())]

    def find(self, column: str, values: set[str]) -> dict[str, int]:
        """Row of the first entry whose ``column`` holds each of ``values`` (a scan)."""
        found: dict[str, int] = {}
        if not values:
            return found
        if self.reader:
            self.columns[column].refresh()
        for row, value in self.columns[column].scan(self.count()):
            if value in values and value not in found:
                found[value] = row
                if len(found) == len(values):
                    break
        return found


__all__ = ["Collection"]
