"""Top-k cosine search: exact brute force (chunked matrix products + np.argpartition) over
arrays or over a store collection streamed from disk in chunks sized by a memory budget, and
query resolution (raw vectors, stored entries, files or text through a binder, arithmetic)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from mmbind.search.expression import evaluate

DEFAULT_MEMORY_BUDGET = 256 * 2**20  # bytes of working memory for a brute-force search
_MIN_CHUNK_ROWS = 256
_LIBRARY_RESERVE = 16 * 2**20
_MAX_BLOCK_BYTES = 64 * 2**20  # vectors per block, measured fastest on a 2-core CPU


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def normalize_rows(x: Any, what: str = "vectors") -> np.ndarray:
    """(N, D) float32 with unit rows; a zero or non-finite row is an error naming its index."""
    x = _to_numpy(x)
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

    def push(self, scores: np.ndarray, first_row: int) -> None:
        """Merge a (Q, m) block of scores whose columns are rows first_row .. first_row+m-1."""
        m = scores.shape[1]
        if self.scores.shape[1] == self.k and m > 0:
            # Once every query holds k results, few rows of a block beat the k-th best: find
            # them with one comparison pass (much cheaper than partitioning the whole block).
            threshold = self.scores.min(axis=1)
            mask = scores > threshold[:, None]
            hits = int(np.count_nonzero(mask))
            if hits <= scores.size // 16:
                if hits:
                    flat = np.flatnonzero(mask)  # 1-D nonzero: far faster than the 2-D form
                    query, column = np.divmod(flat, m)
                    self._merge_sparse(query, scores.ravel()[flat], column + first_row)
                return
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
        n_queries, k = self.scores.shape
        all_q = np.concatenate([np.repeat(np.arange(n_queries), k), query])
        all_s = np.concatenate([self.scores.ravel(), scores])
        all_r = np.concatenate([self.rows.ravel(), rows])
        order = np.lexsort((all_r, -all_s, all_q))  # by query, then best score, then row
        counts = np.bincount(all_q, minlength=n_queries)
        starts = np.cumsum(counts) - counts
        rank = np.arange(len(order)) - starts[all_q[order]]
        keep = order[rank < k]  # every query has at least k entries, so exactly k survive each
        self.scores = all_s[keep].reshape(n_queries, k)
        self.rows = all_r[keep].reshape(n_queries, k)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (Q, k), best first; equal scores by ascending row."""
        order = np.lexsort((self.rows, -self.scores), axis=1)
        return np.take_along_axis(self.scores, order, 1), np.take_along_axis(self.rows, order, 1)


def plan_chunks(memory_budget: int, dim: int, n_queries: int, top_k: int) -> tuple[int, int]:
    """(rows per chunk, queries per pass) so one pass's working set fits ``memory_budget``.

    Per chunk row: the vector (4*dim bytes), its score for each query (4) and the argpartition
    index (8). Fixed per pass: the queries and the top-k state (a few copies while merging).
    When the budget is tight the queries are split into passes (each pass streams the file).
    """
    queries = max(1, n_queries)
    floor = max(_MIN_CHUNK_ROWS, 2 * top_k)
    # BLAS thread buffers, the HDF5 chunk cache and allocator slack add ~10 MiB of RSS outside
    # the arrays (measured by benchmarks/search_speed.py); keep that inside the budget too.
    reserve = min(_LIBRARY_RESERVE, memory_budget // 4)
    while True:
        fixed = reserve + queries * dim * 4 + queries * top_k * 12 * 4
        per_row = dim * 4 + queries * 12
        rows = (memory_budget - fixed) // per_row
        if rows >= floor:
            return int(rows), queries
        if queries == 1:
            need = fixed + floor * per_row
            raise ValueError(f"memory_budget={memory_budget} bytes is too small for dim={dim}, top_k={top_k}: "
                             f"expected at least {need} bytes")
        queries = (queries + 1) // 2


def topk_blocks(queries: np.ndarray, blocks: Iterable[tuple[int, np.ndarray]], top_k: int,
                scores_buffer: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of unit ``queries`` (Q, D) over ``(first_row, block)`` pairs.

    ``scores_buffer``: a flat float32 array of at least Q x (largest block) elements, reused for
    every block's scores (a contiguous view of its start), so no block allocates a second one.
    """
    topk = TopK(len(queries), top_k)
    for first, block in blocks:
        m = len(block)
        if scores_buffer is not None and scores_buffer.size >= len(queries) * m:
            scores = np.matmul(queries, block.T, out=scores_buffer[:len(queries) * m].reshape(len(queries), m))
        else:
            scores = queries @ block.T
        topk.push(scores, first)
    return topk.result()


def semantic_search(query_embeddings: Any, corpus_embeddings: Any, top_k: int = 10,
                    corpus_chunk_size: int = 100_000, query_chunk_size: int = 1000) -> list[list[dict[str, Any]]]:
    """sentence-transformers' ``semantic_search`` over arrays (or tensors): cosine similarity,
    ``[[{"corpus_id": int, "score": float}, ...] per query]``, best first."""
    if top_k <= 0:
        raise ValueError(f"top_k must be positive, got {top_k}")
    queries = normalize_rows(query_embeddings, "query_embeddings")
    corpus = _to_numpy(corpus_embeddings)
    if corpus.ndim != 2 or corpus.shape[1] != queries.shape[1]:
        raise ValueError(f"corpus_embeddings: expected shape (N, {queries.shape[1]}), got {corpus.shape}")
    k = min(top_k, len(corpus))
    if k == 0:
        return [[] for _ in queries]

    def blocks() -> Iterable[tuple[int, np.ndarray]]:
        for start in range(0, len(corpus), corpus_chunk_size):
            yield start, normalize_rows(corpus[start:start + corpus_chunk_size], "corpus_embeddings")

    out: list[list[dict[str, Any]]] = []
    for q0 in range(0, len(queries), query_chunk_size):
        scores, rows = topk_blocks(queries[q0:q0 + query_chunk_size], blocks(), k)
        out.extend([{"corpus_id": int(r), "score": float(s)} for s, r in zip(srow, rrow)]
                   for srow, rrow in zip(scores, rows))
    return out


def search_collection(store: Any, queries: Any, collection: str, top_k: int = 10,
                      memory_budget: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k over a store collection, streamed from the file: (scores, rows), each (Q, k).

    Working memory stays within ``memory_budget`` bytes (default 256 MiB) however large the
    collection is, so a collection larger than RAM can be searched.
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
    # Larger blocks are no faster (they fall out of the CPU caches) and only cost memory.
    chunk_rows = min(chunk_rows, max(_MIN_CHUNK_ROWS, _MAX_BLOCK_BYTES // (4 * info.dim)))
    # Align reads to the file's HDF5 chunks so whole chunks are copied (and each read once).
    file_chunk = store.file["collections"][collection]["embeddings"].chunks[0]
    if chunk_rows > file_chunk:
        chunk_rows -= chunk_rows % file_chunk
    all_scores, all_rows = [], []
    for q0 in range(0, len(queries), per_pass):
        part = queries[q0:q0 + per_pass]
        buffer = np.empty(len(part) * min(chunk_rows, n), dtype=np.float32)
        scores, rows = topk_blocks(part, store.iter_vectors(collection, chunk_rows, stop=n), k, buffer)
        del buffer
        all_scores.append(scores)
        all_rows.append(rows)
    return np.concatenate(all_scores), np.concatenate(all_rows)


class QueryResolver:
    """Turns arithmetic operands into vectors: ``id:collection/<id or #row>`` from the store,
    ``vec:name`` from ``vectors``, anything else ``modality:input`` through ``binder.encode``.
    Records the binder fingerprints the vectors came from, so a search can refuse a query from
    another embedding space."""

    def __init__(self, store: Any = None, binder: Any = None, vectors: Mapping[str, Any] | None = None):
        self.store = store
        self.binder = binder
        self.vectors = dict(vectors or {})
        self.fingerprints: dict[str, str] = {}  # operand -> fingerprint of the space it came from
        self._binder_fingerprint: str | None = None

    def __call__(self, kind: str, ref: str) -> np.ndarray:
        if kind == "id":
            if self.store is None:
                raise ValueError("id: operands need a store")
            collection, row = self.store.resolve_ref(ref)
            self.fingerprints[f"id:{ref}"] = self.store.info(collection).fingerprint
            return self.store.vectors(collection, [row])[0]
        if kind == "vec":
            if ref not in self.vectors:
                have = ", ".join(sorted(self.vectors)) or "none given"
                raise KeyError(f"no vector named {ref!r} (named vectors: {have}; on the command line "
                               f"pass --vec {ref}=FILE.npy)")
            return _to_numpy(self.vectors[ref]).reshape(-1)
        if self.binder is None:
            raise ValueError(f"encoding {kind}:{ref} needs a binder (pass binder=..., or --binder DIR)")
        modalities = getattr(self.binder, "modalities", None)
        if modalities is not None and kind not in modalities:
            raise KeyError(f"the binder has no {kind!r} modality; it has {', '.join(modalities)}")
        if kind != "text" and not Path(ref).exists():
            raise FileNotFoundError(f"{ref}: file not found (expected a {kind} file)")
        if self._binder_fingerprint is None:
            self._binder_fingerprint = self.binder.fingerprint()
        self.fingerprints[f"{kind}:{ref}"] = self._binder_fingerprint
        return np.asarray(self.binder.encode([ref], modality=kind))[0]


def query_matrix(queries: Any, resolver: QueryResolver) -> np.ndarray:
    """Queries (an array, an expression string, or a list of arrays/strings) -> (Q, D) unit rows."""
    if isinstance(queries, str):
        queries = [queries]
    if isinstance(queries, (list, tuple)) and any(isinstance(q, str) for q in queries):
        rows = [evaluate(q, resolver) if isinstance(q, str) else normalize_rows(q, "query vector")[0]
                for q in queries]
        return normalize_rows(np.stack(rows), "queries")
    return normalize_rows(queries, "query vectors")


def search_entries(store: Any, queries: Any, collection: str, top_k: int = 10, *,
                   memory_budget: int | None = None, index: str | None = None, binder: Any = None,
                   vectors: Mapping[str, Any] | None = None, **index_options: Any) -> list[list[dict[str, Any]]]:
    """What ``EmbeddingStore.search`` does: resolve queries, search, attach the stored columns."""
    info = store.info(collection)
    resolver = QueryResolver(store, binder, vectors)
    matrix = query_matrix(queries, resolver)
    for operand, fingerprint in resolver.fingerprints.items():
        if fingerprint != info.fingerprint:
            raise ValueError(f"query operand {operand} comes from binder {fingerprint}, but collection "
                             f"{collection!r} was made by binder {info.fingerprint}: the spaces differ")
    if index is None or index == "brute":
        if index_options:
            raise TypeError(f"{', '.join(index_options)} only apply to index='faiss'")
        scores, rows = search_collection(store, matrix, collection, top_k, memory_budget)
    elif index == "faiss":
        from mmbind.search.faiss_index import search_index

        scores, rows = search_index(store, matrix, collection, top_k, **index_options)
    else:
        raise ValueError(f"index must be None (brute force) or 'faiss', got {index!r}")
    return attach_entries(store, collection, scores, rows)


def attach_entries(store: Any, collection: str, scores: np.ndarray, rows: np.ndarray) -> list[list[dict[str, Any]]]:
    """Result dicts {corpus_id, id, score, label, path, meta} for (Q, k) scores and rows."""
    valid = rows[rows >= 0]
    entries = {e["corpus_id"]: e for e in store.entries(collection, np.unique(valid))} if valid.size else {}
    out = []
    for srow, rrow in zip(scores, rows):
        hits = []
        for s, r in zip(srow.tolist(), rrow.tolist()):
            if r < 0:
                continue
            e = entries[r]
            hits.append({"corpus_id": r, "id": e["id"], "score": float(s), "label": e["label"],
                         "path": e["path"], "meta": e["meta"]})
        out.append(hits)
    return out


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each query's true top-k rows that ``found`` contains."""
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / max(1, truth.size)


__all__ = [
    "DEFAULT_MEMORY_BUDGET", "TopK", "plan_chunks", "topk_blocks", "semantic_search", "search_collection",
    "QueryResolver", "query_matrix", "search_entries", "attach_entries", "normalize_rows", "recall_at_k",
]
