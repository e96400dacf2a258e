"""Searching a store collection with queries: resolve them (raw vectors, stored entries, inputs
encoded by a binder, arithmetic expressions) to unit vectors, refuse operands from another
embedding space, run the streamed brute force or a FAISS index, and attach the stored columns.
What ``EmbeddingStore.search`` runs."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from mmbind.search.expression import evaluate_expression
from mmbind.search.streamed import search_collection
from mmbind.search.topk import as_float32, normalize_rows

if TYPE_CHECKING:
    from mmbind.binder import Binder
    from mmbind.search.source import VectorStore


class QueryResolver:
    """Turns arithmetic operands into vectors: ``id:collection/<id or #row>`` from the store,
    ``vec:name`` from ``vectors``, anything else ``modality:input`` through ``binder.encode``
    (an input that names a file, by the modality's ``input_file``, must exist).
    Records the binder fingerprints the vectors came from, so a search can refuse a query from
    another embedding space."""

    def __init__(self, store: VectorStore | None = None, binder: Binder | None = None,
                 vectors: Mapping[str, Any] | None = None):
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
            return as_float32(self.vectors[ref]).reshape(-1)
        if self.binder is None:
            raise ValueError(f"encoding {kind}:{ref} needs a binder (pass binder=..., or --binder DIR)")
        modalities = getattr(self.binder, "modalities", None)
        if modalities is not None and kind not in modalities:
            raise KeyError(f"the binder has no {kind!r} modality; it has {', '.join(modalities)}")
        from mmbind import get_modality

        path = get_modality(kind).input_file(ref)
        if path is not None and not path.exists():
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
        rows = [evaluate_expression(q, resolver) if isinstance(q, str) else normalize_rows(q, "query vector")[0]
                for q in queries]
        return normalize_rows(np.stack(rows), "queries")
    return normalize_rows(queries, "query vectors")


def search_entries(store: VectorStore, queries: Any, collection: str, top_k: int = 10, *,
                   memory_budget: int | None = None, index: str | None = None, binder: Binder | None = None,
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


def attach_entries(store: VectorStore, collection: str, scores: np.ndarray,
                   rows: np.ndarray) -> list[list[dict[str, Any]]]:
    """Result dicts {corpus_id, id, score, label, path, meta} for (Q, k) scores and rows
    (rows < 0, FAISS's "no result", are left out)."""
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


__all__ = ["QueryResolver", "query_matrix", "search_entries", "attach_entries"]
