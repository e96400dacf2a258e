"""Exact top-k over a store collection streamed from its file in chunks sized by a memory budget,
so a collection larger than RAM can be searched."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mmbind.search.topk import normalize_rows, topk_blocks

if TYPE_CHECKING:
    from mmbind.search.source import VectorStore

DEFAULT_MEMORY_BUDGET = 256 * 2**20  # bytes of working memory for a brute-force search
_MIN_CHUNK_ROWS = 256  # fewer rows per matrix product waste the BLAS call's fixed cost
# BLAS thread buffers, the HDF5 chunk cache and allocator slack add ~10 MiB of RSS outside the
# arrays (measured by benchmarks/search_speed.py); kept inside the budget too.
_LIBRARY_RESERVE = 16 * 2**20
_MAX_BLOCK_BYTES = 64 * 2**20  # vectors per block: larger blocks fall out of the CPU caches, no faster
_SCORE_BYTES_PER_ROW = 12  # per query: a float32 score, and a comparison flag or (a dense merge) an int64 index
_TOPK_STATE_COPIES = 4  # the top-k state (float32 score + int64 row) lives in a few copies while merging


def plan_chunks(memory_budget: int, dim: int, n_queries: int, top_k: int, buffers: int = 1) -> tuple[int, int]:
    """(rows per chunk, queries per pass) so one pass's working set fits ``memory_budget``.

    Per chunk row: the vector in each of ``buffers`` blocks (4*dim bytes each; 2 when the next
    block is read ahead while this one is multiplied), its score for each query (4) and the
    comparison flag or, when a block is merged densely, the argpartition index (8). Fixed per
    pass: the queries and the top-k state (a few copies while merging).
    When the budget is tight the queries are split into passes (each pass streams the file).
    """
    queries = max(1, n_queries)
    floor = max(_MIN_CHUNK_ROWS, 2 * top_k)
    reserve = min(_LIBRARY_RESERVE, memory_budget // 4)
    while True:
        fixed = reserve + queries * dim * 4 + queries * top_k * _SCORE_BYTES_PER_ROW * _TOPK_STATE_COPIES
        per_row = buffers * dim * 4 + queries * _SCORE_BYTES_PER_ROW
        rows = (memory_budget - fixed) // per_row
        if rows >= floor:
            return int(rows), queries
        if queries == 1:
            need = fixed + floor * per_row
            raise ValueError(f"memory_budget={memory_budget} bytes is too small for dim={dim}, top_k={top_k}: "
                             f"expected at least {need} bytes")
        queries = (queries + 1) // 2


def search_collection(store: VectorStore, queries: Any, collection: str, top_k: int = 10,
                      memory_budget: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k over a store collection, streamed from the file: (scores, rows), each (Q, k).

    Working memory stays within ``memory_budget`` bytes (default 256 MiB) however large the
    collection is.
    """
    if top_k <= 0:
        raise ValueError(f"top_k must be positive, got {top_k}")
    info = store.info(collection)
    queries = normalize_rows(queries, "query vectors")
    if queries.shape[1] != info.dim:
        raise ValueError(f"query vectors have {queries.shape[1]} dimensions; collection {collection!r} "
                         f"stores {info.dim}-d vectors")
    n = info.count
    k = min(top_k, n)
    if k == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else int(memory_budget)
    chunk_rows, per_pass = plan_chunks(budget, info.dim, len(queries), k)
    # Reading the next block while this one multiplies needs a second block of memory: worth it
    # unless the budget then needs more passes over the file.
    try:
        overlapped = plan_chunks(budget, info.dim, len(queries), k, buffers=2)
    except ValueError:
        overlapped = (0, 0)
    prefetch = overlapped[1] == per_pass
    if prefetch:
        chunk_rows = overlapped[0]
    chunk_rows = min(chunk_rows, max(_MIN_CHUNK_ROWS, _MAX_BLOCK_BYTES // (4 * info.dim)))
    # Align reads to the file's HDF5 chunks so whole chunks are copied (and each read once).
    file_chunk = store.read_chunk_rows(collection)
    if chunk_rows > file_chunk:
        chunk_rows -= chunk_rows % file_chunk
    all_scores, all_rows = [], []
    for q0 in range(0, len(queries), per_pass):
        part = queries[q0:q0 + per_pass]
        buffer = np.empty(len(part) * min(chunk_rows, n), dtype=np.float32)
        scores, rows = topk_blocks(part, store.iter_vectors(collection, chunk_rows, stop=n, prefetch=prefetch),
                                    k, buffer)
        del buffer
        all_scores.append(scores)
        all_rows.append(rows)
    return np.concatenate(all_scores), np.concatenate(all_rows)


__all__ = ["DEFAULT_MEMORY_BUDGET", "plan_chunks", "search_collection"]
