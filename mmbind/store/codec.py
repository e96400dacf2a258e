"""The store's string columns: ragged UTF-8 text that an HDF5 SWMR writer can append.

SWMR cannot append variable-length data, so a column ``<name>`` of N strings is two datasets:
``<name>_end`` int64 (N,) holds where string i ends in ``<name>_bytes`` uint8 (M,), the UTF-8
bytes of all strings concatenated; string i starts where string i-1 ends (the first at 0).
This module is the only code that knows that layout (docs/store.md documents it for readers
with plain h5py).
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import h5py
import numpy as np

SCAN_ROWS = 65536  # rows decoded per step of a scan: memory stays bounded on any column size
_END_CHUNK = 8192  # offsets per HDF5 chunk (64 KiB)
_BYTES_CHUNK = 1 << 16  # bytes per HDF5 chunk
_MERGE_GAP = 1 << 16  # byte ranges this close are fetched in one read (fewer, larger reads)


def _end(name: str) -> str:
    return f"{name}_end"


def _bytes(name: str) -> str:
    return f"{name}_bytes"


def create_column(group: h5py.Group, name: str) -> None:
    """Add an empty, appendable string column ``name`` to a collection group."""
    group.create_dataset(_end(name), shape=(0,), maxshape=(None,), dtype="i8", chunks=(_END_CHUNK,))
    group.create_dataset(_bytes(name), shape=(0,), maxshape=(None,), dtype="u1", chunks=(_BYTES_CHUNK,))


class StringColumn:
    """One string column of a collection group: append, truncate, read rows, scan."""

    def __init__(self, group: h5py.Group, name: str):
        self.name = name
        self.ends = group[_end(name)]
        self.blob = group[_bytes(name)]

    def refresh(self) -> None:
        """SWMR readers: see what the writer has flushed since."""
        self.ends.refresh()
        self.blob.refresh()

    def byte_length(self, n: int) -> int:
        """Bytes used by the first ``n`` strings."""
        return int(self.ends[n - 1]) if n else 0

    def append(self, n: int, values: Sequence[str]) -> None:
        """Write ``values`` as rows n, n+1, ...; anything already beyond row n is overwritten."""
        base = self.byte_length(n)
        encoded = [v.encode("utf-8") for v in values]
        self.ends.resize(n + len(values), axis=0)
        self.ends[n:n + len(values)] = base + np.cumsum([len(e) for e in encoded], dtype=np.int64)
        blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        self.blob.resize(base + len(blob), axis=0)
        if len(blob):
            self.blob[base:base + len(blob)] = blob

    def truncate(self, n: int) -> bool:
        """Keep the first ``n`` strings only; True if anything was cut."""
        size = self.byte_length(n)
        cut = False
        for dataset, rows in ((self.ends, n), (self.blob, size)):
            if dataset.shape[0] != rows:
                dataset.resize(rows, axis=0)
                cut = True
        return cut

    def read(self, rows: np.ndarray) -> dict[int, str]:
        """The strings of ``rows`` (any order, repeats allowed), by row."""
        rows = np.unique(rows)
        if len(rows) == 0:
            return {}
        needed = np.unique(np.concatenate([rows, rows[rows > 0] - 1]))
        ends = dict(zip(needed.tolist(), self.ends[needed].tolist()))
        spans = [(r, ends[r - 1] if r > 0 else 0, ends[r]) for r in rows.tolist()]
        out: dict[int, str] = {}
        i = 0
        while i < len(spans):
            j = i
            while j + 1 < len(spans) and spans[j + 1][1] - spans[j][2] < _MERGE_GAP:
                j += 1
            lo, hi = spans[i][1], spans[j][2]
            blob = self.blob[lo:hi].tobytes() if hi > lo else b""
            for row, start, stop in spans[i:j + 1]:
                out[row] = blob[start - lo:stop - lo].decode("utf-8")
            i = j + 1
        return out

    def scan(self, n: int) -> Iterator[tuple[int, str]]:
        """``(row, string)`` for the first ``n`` rows in order, SCAN_ROWS at a time."""
        for start in range(0, n, SCAN_ROWS):
            ends = self.ends[start:min(n, start + SCAN_ROWS)]
            base = self.byte_length(start)
            blob = self.blob[base:int(ends[-1])].tobytes()
            previous = 0
            for offset, stop in enumerate((ends - base).tolist()):
                yield start + offset, blob[previous:stop].decode("utf-8")
                previous = stop


def join_column(out: h5py.Group, name: str, parts: Sequence[tuple[h5py.Group, int]],
                link_bytes: Callable[[str, list[int]], None]) -> None:
    """Write column ``name`` of ``out`` as the concatenation of the first n strings of each
    ``(group, n)`` in ``parts``: the end offsets are copied, shifted by the bytes before them;
    ``link_bytes(dataset, lengths)`` makes the bytes dataset from each part's first ``length``
    bytes (the shard join links them as a virtual dataset, without a copy)."""
    columns = [(StringColumn(group, name), n) for group, n in parts]
    shifted, offset = [], 0
    for column, n in columns:
        shifted.append(column.ends[:n].astype(np.int64) + offset)
        offset += column.byte_length(n)
    ends = np.concatenate(shifted) if shifted else np.zeros(0, np.int64)
    out.create_dataset(_end(name), data=ends, dtype="i8")
    link_bytes(_bytes(name), [column.byte_length(n) for column, n in columns])


__all__ = ["SCAN_ROWS", "StringColumn", "create_column", "join_column"]
