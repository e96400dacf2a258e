"""Zero-copy reads of a float32 dataset's chunks: spans of chunks that lie back to back in the
file are mapped read-only and handed out as numpy views, so the vectors go from the page cache
straight into the matrix product (a search's copy out of the page cache cost about a quarter of
its time; benchmarks/search_speed.py).

Only for unfiltered little-endian float32 chunks in a plain (sec2) file without a user block;
``chunk_spans`` returns None otherwise and the caller copies instead.
"""
from __future__ import annotations

import mmap
import sys
from typing import Iterator, NamedTuple

import h5py
import numpy as np


class Span(NamedTuple):
    """Rows ``first .. first+rows-1``, stored back to back from byte ``offset`` of the file."""

    first: int
    rows: int
    offset: int


def chunk_spans(dataset: h5py.Dataset, start: int, stop: int, max_rows: int) -> list[Span] | None:
    """The rows [start, stop) of a 2-D dataset as spans of at most ``max_rows`` rows, each
    contiguous in the file; None when the dataset cannot be mapped (filters, byte order, driver,
    a user block, a chunk not yet allocated, or an HDF5 without chunk iteration)."""
    plist = dataset.id.get_create_plist()
    if (dataset.chunks is None or plist.get_nfilters() or dataset.dtype != np.dtype("<f4")
            or sys.byteorder != "little" or dataset.file.driver != "sec2" or dataset.file.userblock_size
            or not hasattr(dataset.id, "chunk_iter")):
        return None
    chunk_rows = dataset.chunks[0]
    row_bytes = 4 * dataset.shape[1]
    chunks: dict[int, int] = {}  # first row of a chunk -> its byte offset
    dataset.id.chunk_iter(lambda info: chunks.__setitem__(info.chunk_offset[0], info.byte_offset))
    spans: list[Span] = []
    row = start
    while row < stop:
        chunk_first = row - row % chunk_rows
        if chunk_first not in chunks:
            return None
        offset = chunks[chunk_first] + (row - chunk_first) * row_bytes
        rows = min(chunk_first + chunk_rows, stop, row + max_rows) - row
        last = spans[-1] if spans else None
        if last is not None and last.offset + last.rows * row_bytes == offset and last.rows + rows <= max_rows:
            spans[-1] = last._replace(rows=last.rows + rows)
        else:
            spans.append(Span(row, rows, offset))
        row += rows
    return spans


def _map(fd: int, span: Span, row_bytes: int) -> np.ndarray:
    start = span.offset - span.offset % mmap.ALLOCATIONGRANULARITY
    length = span.offset + span.rows * row_bytes - start
    mapped = mmap.mmap(fd, length, access=mmap.ACCESS_READ, offset=start)
    if hasattr(mapped, "madvise"):
        mapped.madvise(mmap.MADV_WILLNEED)  # start reading a cold file ahead of the matrix product
    # the view keeps the mapping alive; it is unmapped when the caller drops the view
    return np.frombuffer(mapped, dtype="<f4", count=span.rows * row_bytes // 4,
                         offset=span.offset - start).reshape(span.rows, -1)


def iter_mapped(dataset: h5py.Dataset, spans: list[Span]) -> Iterator[tuple[int, np.ndarray]]:
    """``(first_row, block)`` per span, ``block`` a read-only view of the mapped file. The next
    span is mapped (and its read-ahead started) before this one is handed out; a span is
    unmapped once the caller lets go of its block, so at most two spans count in memory."""
    fd = dataset.file.id.get_vfd_handle()
    row_bytes = 4 * dataset.shape[1]
    upcoming = _map(fd, spans[0], row_bytes) if spans else None
    for i, span in enumerate(spans):
        block, upcoming = upcoming, (_map(fd, spans[i + 1], row_bytes) if i + 1 < len(spans) else None)
        yield span.first, block
        del block


__all__ = ["Span", "chunk_spans", "iter_mapped"]
