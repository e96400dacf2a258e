"""Exact top-k, the project's one: a running top-k over score blocks fed in row order (chunked
matrix products + np.argpartition), over arrays or any stream of ``(first_row, block)``.

``topk(queries, gallery, k)`` is the array entry point; ``semantic_search`` wraps it in
sentence-transformers' result format; ``mmbind.search.streamed`` feeds it from a store file.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np

_SPARSE_MERGE_SHARE = 16  # merge a block's hits one by one when at most 1/16 of its scores beat the k-th best
_SEED_COLUMNS = 1024  # columns of the first block that fill the top-k state before the sparse merge


def as_float32(x: Any) -> np.ndarray:
    """An array or tensor (without importing torch) as a float32 numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def normalize_rows(x: Any, what: str = "vectors") -> np.ndarray:
    """(N, D) float32 with unit rows; a zero or non-finite row is an error naming its index."""
    x = as_float32(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{what}: expected shape (N, D) or (D,), got {x.shape}")
    norms = np.linalg.norm(x, axis=1)
    bad = ~np.isfinite(norms) | (norms == 0)
    if bad.any():
        raise ValueError(f"{what}: row {int(np.argmax(bad))} is zero or not finite (cannot be normalised)")
    return np.ascontiguousarray(x / norms[:, None], dtype=np.float32)


class TopK:
    """Running top-k per query over score blocks fed in row order."""

    def __init__(self, n_queries: int, k: int):
        self.k = k
        self.scores = np.full((n_queries, 0), -np.inf, dtype=np.float32)
        self.rows = np.full((n_queries, 0), -1, dtype=np.int64)
        self._mask = np.empty(0, dtype=bool)

    def push(self, scores: np.ndarray, first_row: int) -> None:
        """Merge a (Q, m) block of scores whose columns are rows first_row .. first_row+m-1."""
        m = scores.shape[1]
        if self.scores.shape[1] < self.k and m > _SEED_COLUMNS:
            # Fill the state from the block's first columns alone (partitioning the whole block
            # costs more than the rest of the search's merging), then merge the rest in pieces
            # of doubling width: against the k-th best of the s columns before it, about k of
            # each query's next s columns pass (one piece would let ~k/1024 of the rest through).
            self.push(scores[:, :_SEED_COLUMNS], first_row)
            start = _SEED_COLUMNS
            while start < m:
                self.push(scores[:, start:2 * start], first_row + start)
                start *= 2
            return
        if self.scores.shape[1] == self.k and m > 0:
            # Once every query holds k results, few rows of a block beat the k-th best: find
            # them with one comparison pass (much cheaper than partitioning the whole block).
            threshold = self.scores.min(axis=1)
            if self._mask.size < scores.size:
                self._mask = np.empty(scores.size, dtype=bool)
            # the comparison writes into a reused buffer: a fresh one per block costs its page faults
            mask = np.greater(scores, threshold[:, None], out=self._mask[:scores.size].reshape(scores.shape))
            flat = np.flatnonzero(mask)  # 1-D nonzero: far faster than 2-D
            if len(flat) <= scores.size // _SPARSE_MERGE_SHARE:
                if len(flat):
                    query, column = np.divmod(flat, m)
                    self._merge_sparse(query, scores[query, column], column + first_row)
                return
        self._merge_dense(scores, first_row)

    def _merge_dense(self, scores: np.ndarray, first_row: int) -> None:
        m = scores.shape[1]
        if m > self.k:
            # partial sort: the k largest of each query's row, in no particular order
            part = np.argpartition(scores, m - self.k, axis=1)[:, m - self.k:]
            block_scores = np.take_along_axis(scores, part, axis=1)
        else:
            part = np.broadcast_to(np.arange(m), scores.shape)
            block_scores = scores
        all_scores = np.concatenate([self.scores, block_scores], axis=1)
        all_rows = np.concatenate([self.rows, part + first_row], axis=1)
        width = all_scores.shape[1]
        if width > self.k:
            keep = np.argpartition(all_scores, width - self.k, axis=1)[:, width - self.k:]
            all_scores = np.take_along_axis(all_scores, keep, axis=1)
            all_rows = np.take_along_axis(all_rows, keep, axis=1)
        self.scores, self.rows = all_scores, all_rows

    def _merge_sparse(self, query: np.ndarray, scores: np.ndarray, rows: np.ndarray) -> None:
        """Merge hits given as (query, score, row): only the queries with hits are re-ranked."""
        k = self.k
        hit = np.flatnonzero(np.bincount(query, minlength=len(self.scores)))
        slot = np.searchsorted(hit, query)  # each hit's query among the queries with hits
        all_q = np.concatenate([np.repeat(np.arange(len(hit)), k), slot])
        all_s = np.concatenate([self.scores[hit].ravel(), scores])
        all_r = np.concatenate([self.rows[hit].ravel(), rows])
        order = np.lexsort((all_r, -all_s, all_q))  # by query, then best score, then row
        counts = np.bincount(all_q, minlength=len(hit))
        starts = np.cumsum(counts) - counts
        rank = np.arange(len(order)) - starts[all_q[order]]
        keep = order[rank < k]  # every query has at least k entries, so exactly k survive each
        self.scores[hit] = all_s[keep].reshape(len(hit), k)
        self.rows[hit] = all_r[keep].reshape(len(hit), k)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (Q, k), best first; equal scores by ascending row."""
        order = np.lexsort((self.rows, -self.scores), axis=1)
        return np.take_along_axis(self.scores, order, 1), np.take_along_axis(self.rows, order, 1)


def topk_blocks(queries: np.ndarray, blocks: Iterable[tuple[int, np.ndarray]], top_k: int,
                scores_buffer: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner products of ``queries`` (Q, D) over ``(first_row, block)`` pairs.

    ``scores_buffer``: a flat float32 array of at least Q x (largest block) elements, reused for
    every block's scores (a contiguous view of its start), so no block allocates a second one.
    """
    top = TopK(len(queries), top_k)
    for first, block in blocks:
        m = len(block)
        if scores_buffer is not None and scores_buffer.size >= len(queries) * m:
            scores = np.matmul(queries, block.T, out=scores_buffer[:len(queries) * m].reshape(len(queries), m))
        else:
            scores = queries @ block.T
        top.push(scores, first)
    return top.result()


def topk(queries: Any, gallery: Any, k: int, *, cosine: bool = False, gallery_chunk_size: int = 100_000,
         query_chunk_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The k best gallery rows for each query: ``(scores, rows)``, each (Q, min(k, N)), best
    first, equal scores by ascending row. Scores are inner products of the rows as given;
    ``cosine=True`` normalises queries and gallery rows first (a zero row is then an error).
    Arrays or tensors; the work goes in chunks, so memory holds one chunk of scores."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    queries = normalize_rows(queries, "queries") if cosine else as_float32(queries)
    gallery = as_float32(gallery)
    if queries.ndim != 2 or gallery.ndim != 2 or gallery.shape[1] != queries.shape[1]:
        raise ValueError(f"gallery: expected shape (N, {queries.shape[-1]}) for queries of shape "
                         f"{queries.shape}, got {gallery.shape}")
    k = min(k, len(gallery))
    if k == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)

    def blocks() -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, len(gallery), gallery_chunk_size):
            block = gallery[start:start + gallery_chunk_size]
            yield start, normalize_rows(block, "gallery") if cosine else block

    parts = [topk_blocks(queries[q0:q0 + query_chunk_size], blocks(), k)
             for q0 in range(0, len(queries), query_chunk_size)]
    if not parts:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    return np.concatenate([s for s, _ in parts]), np.concatenate([r for _, r in parts])


def semantic_search(query_embeddings: Any, corpus_embeddings: Any, top_k: int = 10,
                    corpus_chunk_size: int = 100_000, query_chunk_size: int = 1000) -> list[list[dict[str, Any]]]:
    """sentence-transformers' ``semantic_search`` over arrays (or tensors): cosine similarity,
    ``[[{"corpus_id": int, "score": float}, ...] per query]``, best first."""
    if top_k <= 0:
        raise ValueError(f"top_k must be positive, got {top_k}")
    scores, rows = topk(query_embeddings, corpus_embeddings, top_k, cosine=True,
                        gallery_chunk_size=corpus_chunk_size, query_chunk_size=query_chunk_size)
    return [[{"corpus_id": int(r), "score": float(s)} for s, r in zip(srow, rrow)]
            for srow, rrow in zip(scores, rows)]


def knn_recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's true top-k rows that ``found`` holds: how well an approximate
    search (FAISS IVF or HNSW) recovers the exact neighbours."""
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / max(1, truth.size)


__all__ = ["TopK", "topk", "topk_blocks", "semantic_search", "normalize_rows", "as_float32", "knn_recall"]
