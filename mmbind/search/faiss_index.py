"""Optional FAISS index of a store collection (faiss-cpu is imported only when used).

The index is saved beside the store as ``<store>.<collection>.faiss`` with a JSON sidecar
``<store>.<collection>.faiss.json`` recording what it was built from (committed count, binder
fingerprint, dim, kind). Searching with an index whose sidecar no longer matches the collection
raises StaleIndexError, so a stale index is never used silently. Row i of the collection is
FAISS id i, so results map straight back to store entries.
"""
from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mmbind.search.source import VectorStore

KINDS = ("flat", "ivf", "hnsw")
_BUILD_CHUNK_ROWS = 65536  # vectors read per step while adding to the index: bounded memory
_MIN_POINTS_PER_LIST = 39  # FAISS warns when k-means gets fewer training points per centroid
_TRAIN_POINTS_PER_LIST = 256  # FAISS's max_points_per_centroid: more training points are subsampled away
_MIN_TRAIN_POINTS = 10_000  # few lists still train on a fair sample of the collection
_NPROBE_SHARE = 8  # an IVF search probes 1/8 of the lists unless told otherwise
_DEFAULT_EF_SEARCH = 64  # HNSW candidate list size unless told otherwise (at least top_k)


class StaleIndexError(RuntimeError):
    """The saved index was built from a different state of the collection."""


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as error:
        raise ImportError("FAISS indexes need the optional package faiss-cpu: pip install faiss-cpu "
                          "(or pip install 'mmbind[faiss]'); brute-force search needs nothing extra") from error
    return faiss


def index_paths(store_path: str | Path, collection: str) -> tuple[Path, Path]:
    """(index file, JSON sidecar) for a collection of the store at ``store_path``."""
    base = Path(store_path)
    index = base.with_name(f"{base.name}.{collection}.faiss")
    return index, index.with_name(index.name + ".json")


def _sample_rows(n: int, size: int) -> np.ndarray:
    # evenly spaced rows: deterministic and spread over the whole collection
    return np.unique(np.linspace(0, n - 1, num=min(n, size)).astype(np.int64))


def build_index(store: VectorStore, collection: str, kind: str = "flat", *, nlist: int | None = None,
                hnsw_m: int = 32, ef_construction: int = 80, train_size: int | None = None) -> Path:
    """Build a FAISS inner-product index of ``collection``, streamed in chunks, and save it with
    its sidecar; returns the index path. ``ivf``: IndexIVFFlat with ``nlist`` lists (default
    about 4*sqrt(N)) trained on evenly spaced rows; ``hnsw``: IndexHNSWFlat with ``hnsw_m``."""
    if kind not in KINDS:
        raise ValueError(f"index kind must be one of {', '.join(KINDS)}, got {kind!r}")
    faiss = _faiss()
    info = store.info(collection)
    n, dim = info.count, info.dim
    if n == 0:
        raise ValueError(f"collection {collection!r} is empty: nothing to index")
    params: dict[str, Any] = {}
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        params.update(hnsw_m=hnsw_m, ef_construction=ef_construction)
    else:
        if nlist is None:
            nlist = max(1, min(int(4 * math.sqrt(n)), n // _MIN_POINTS_PER_LIST))
        if not 1 <= nlist <= n:
            raise ValueError(f"nlist must be between 1 and the collection size {n}, got {nlist}")
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = store.vectors(collection, _sample_rows(n, train_size or max(_TRAIN_POINTS_PER_LIST * nlist, _MIN_TRAIN_POINTS)))
        index.train(np.ascontiguousarray(sample))
        params.update(nlist=nlist)
    for _, block in store.iter_vectors(collection, _BUILD_CHUNK_ROWS, stop=n):
        index.add(np.ascontiguousarray(block))
    path, sidecar = index_paths(store.path, collection)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)
    meta = {
        "collection": collection, "kind": kind, "metric": "inner_product", "count": n, "dim": dim,
        "fingerprint": info.fingerprint, "params": params, "faiss_version": faiss.__version__,
        "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    tmp_meta = sidecar.with_name(sidecar.name + f".tmp-{os.getpid()}")
    tmp_meta.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp_meta, sidecar)  # written last: a sidecar always describes a complete index
    return path


def index_info(store: VectorStore, collection: str) -> dict[str, Any]:
    """The sidecar of a collection's index; raises FileNotFoundError if there is none."""
    path, sidecar = index_paths(store.path, collection)
    if not path.is_file() or not sidecar.is_file():
        raise FileNotFoundError(f"no FAISS index for collection {collection!r} (expected {path} and {sidecar}); "
                                f"build one with build_index() or `mmbind index`")
    try:
        return json.loads(sidecar.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{sidecar}: not valid JSON ({error})") from error


def check_fresh(store: VectorStore, collection: str, meta: dict[str, Any]) -> None:
    """Raise StaleIndexError unless the sidecar matches the collection's current state."""
    info = store.info(collection)
    problems = []
    if meta.get("fingerprint") != info.fingerprint:
        problems.append(f"binder {meta.get('fingerprint')} (collection now: {info.fingerprint})")
    if meta.get("count") != info.count:
        problems.append(f"{meta.get('count')} entries (collection now: {info.count})")
    if meta.get("dim") != info.dim:
        problems.append(f"dim {meta.get('dim')} (collection now: {info.dim})")
    if problems:
        raise StaleIndexError(f"the FAISS index of collection {collection!r} is stale: built from "
                              f"{'; '.join(problems)}; rebuild it with `mmbind index`")


def load_index(store: VectorStore, collection: str) -> tuple[Any, dict[str, Any]]:
    """(faiss index, sidecar dict) after checking the index is not stale."""
    faiss = _faiss()
    meta = index_info(store, collection)
    check_fresh(store, collection, meta)
    path, _ = index_paths(store.path, collection)
    return faiss.read_index(str(path)), meta


def search_index(store: VectorStore, queries: np.ndarray, collection: str, top_k: int = 10, *,
                 nprobe: int | None = None, ef_search: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows), each (Q, k), from the saved index; ``queries`` are unit rows."""
    index, meta = load_index(store, collection)
    if meta["kind"] == "ivf":
        index.nprobe = nprobe or max(1, int(meta["params"]["nlist"]) // _NPROBE_SHARE)
    elif meta["kind"] == "hnsw":
        index.hnsw.efSearch = max(ef_search or _DEFAULT_EF_SEARCH, top_k)
    k = min(top_k, int(meta["count"]))
    scores, rows = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return scores, rows.astype(np.int64)


__all__ = ["KINDS", "StaleIndexError", "index_paths", "build_index", "index_info", "check_fresh",
           "load_index", "search_index"]
