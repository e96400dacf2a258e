"""Sharded embedding under torchrun: each rank appends to its own store file, then rank 0 joins
the shards into one store whose collections are HDF5 virtual datasets over the shard files.

Layout for ``--store runs/x/embeddings.h5`` and 2 ranks::

    runs/x/embeddings.h5                          the joined store (open it like any store)
    runs/x/embeddings.h5.shards/rank-00000-of-00002.h5   rank 0's store (inputs [0, n/2))
    runs/x/embeddings.h5.shards/rank-00001-of-00002.h5   rank 1's store (inputs [n/2, n))

Each rank takes a contiguous slice of the inputs, so the joined collection keeps their order.
In the joined file ``embeddings``, ``content_hash`` and the ``*_bytes`` string columns are
virtual (no copy); the ``*_end`` offset columns are small real datasets, shifted by each
shard's byte offset, because the store's string format needs offsets into the joined bytes.
Source paths are stored relative to the joined file, so the folder can move as a whole.
The joined store is read-only (``EmbeddingStore(path, mode="r")``); to add inputs, run the
sharded embed again (each shard skips what it already holds, then the join is rebuilt).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import h5py
import numpy as np

from mmbind import distributed as dist
from mmbind.store.codec import join_column
from mmbind.store.errors import StoreError
from mmbind.store.ingest import embed_inputs
from mmbind.store.schema import LIBVER, STORE_FORMAT, STRING_COLUMNS, committed_count, init_store
from mmbind.store.store import AddResult, EmbeddingStore

if TYPE_CHECKING:
    from mmbind.binder import Binder

JOINED_ATTR = "joined_shards"  # root attribute of a joined store: the shard files, relative


def shard_dir(store: str | Path) -> Path:
    """The folder of ``store``'s shard files."""
    store = Path(store)
    return store.with_name(store.name + ".shards")


def shard_path(store: str | Path, rank: int, world: int) -> Path:
    """Where rank ``rank`` of ``world`` writes its part of ``store``."""
    return shard_dir(store) / f"rank-{rank:05d}-of-{world:05d}.h5"


def shard_range(n: int, rank: int, world: int) -> tuple[int, int]:
    """The contiguous slice [start, stop) of n inputs that ``rank`` embeds."""
    return n * rank // world, n * (rank + 1) // world


def is_joined(store: str | Path) -> bool:
    """True if ``store`` is a joined (virtual) store made by join_shards."""
    try:
        with h5py.File(store, "r") as f:
            return JOINED_ATTR in f.attrs
    except OSError:
        return False


def join_shards(store: str | Path, shards: Sequence[str | Path]) -> Path:
    """Write ``store`` as one store whose collections concatenate those of ``shards`` (in order).

    Every shard holding a collection must agree on its modality, dim and fingerprint. Only the
    committed rows of each shard are joined. The file is written beside ``store`` and renamed
    over it, so readers never see a half-made join.
    """
    store = Path(store)
    shards = [Path(s) for s in shards]
    missing = [str(s) for s in shards if not s.is_file()]
    if missing:
        raise StoreError(f"cannot join {store}: shard files missing: {', '.join(missing)}")
    handles = [h5py.File(s, "r", libver=LIBVER, swmr=True) for s in shards]
    try:
        for shard, f in zip(shards, handles):
            if f.attrs.get("format") != STORE_FORMAT:
                raise StoreError(f"{shard}: not an mmbind embedding store; cannot join it")
        names = sorted({name for f in handles for name in f["collections"]})
        tmp = store.with_name(f"{store.name}.join-{os.getpid()}")
        with h5py.File(tmp, "w", libver=LIBVER) as out:
            init_store(out)
            out.attrs["created"] = handles[0].attrs["created"]
            out.attrs[JOINED_ATTR] = [os.path.relpath(s, store.parent) for s in shards]
            for name in names:
                parts = [(shard, f["collections"][name]) for shard, f in zip(shards, handles)
                         if name in f["collections"]]
                _join_collection(out["collections"], name, parts, store.parent)
        os.replace(tmp, store)
    finally:
        for f in handles:
            f.close()
    return store


def _join_collection(root: h5py.Group, name: str, parts: list[tuple[Path, h5py.Group]], base: Path) -> None:
    first_shard, first = parts[0]
    for key in ("modality", "dim", "fingerprint"):
        for shard, group in parts[1:]:
            if group.attrs[key] != first.attrs[key]:
                raise StoreError(f"cannot join collection {name!r}: {key} is {first.attrs[key]!r} in "
                                 f"{first_shard} but {group.attrs[key]!r} in {shard}")
    counts = [committed_count(group) for _, group in parts]
    group_out = root.create_group(name)
    for key, value in first.attrs.items():
        group_out.attrs[key] = value

    def link(dataset: str, lengths: list[int]) -> None:
        """``dataset`` of the joined group: the first ``length`` rows of each part's, without a copy."""
        dtype, tail = first[dataset].dtype, first[dataset].shape[1:]
        layout = h5py.VirtualLayout(shape=(sum(lengths), *tail), dtype=dtype)
        offset = 0
        for length, (shard, group) in zip(lengths, parts):
            if length:
                source = h5py.VirtualSource(os.path.relpath(shard, base), group[dataset].name,
                                            shape=group[dataset].shape, dtype=dtype)
                layout[offset:offset + length] = source[:length]
            offset += length
        group_out.create_virtual_dataset(dataset, layout, fillvalue=None)

    link("embeddings", counts)
    group_out["embeddings"].attrs["committed"] = np.int64(sum(counts))
    link("content_hash", counts)
    for column in STRING_COLUMNS:
        join_column(group_out, column, [(group, n) for n, (_, group) in zip(counts, parts)], link)


def embed_sharded(store: str | Path, binder: Binder, collection: str, items: Sequence[Any], *, modality: str,
                  batch_size: int = 64,
                  on_commit: Callable[[AddResult, int], None] | None = None) -> tuple[AddResult, int]:
    """Embed ``items`` with every rank of the process group (torchrun), one shard per rank,
    then join the shards into ``store``. Returns (AddResult summed over ranks, joined count).

    Each shard skips inputs it already holds, so re-running after an interruption resumes;
    re-run with the same number of ranks (the slices depend on it)."""
    import torch

    device = dist.init_from_env(str(next(binder.parameters()).device))
    rank, world = dist.rank(), dist.world_size()
    store = Path(store)
    if store.exists() and not is_joined(store):
        raise StoreError(f"{store}: exists and is not a sharded store; a sharded embed writes a new "
                         f"store (choose another path, or embed with one process)")
    start, stop = shard_range(len(items), rank, world)
    with EmbeddingStore(shard_path(store, rank, world)) as part:
        result = embed_inputs(part, binder, collection, list(items[start:stop]), modality=modality,
                              batch_size=batch_size, on_commit=on_commit)
    totals = torch.tensor([result.added, result.skipped], dtype=torch.int64,
                          device=device if device.type == "cuda" else "cpu")
    if dist.is_distributed():
        torch.distributed.all_reduce(totals)
    dist.barrier()  # every shard is complete before the join reads it
    if dist.is_main():
        join_shards(store, [shard_path(store, r, world) for r in range(world)])
    dist.barrier()
    with EmbeddingStore(store, mode="r") as joined:
        count = joined.count(collection)
    return AddResult(int(totals[0]), int(totals[1])), count


__all__ = ["embed_sharded", "join_shards", "shard_path", "shard_range", "shard_dir", "is_joined"]
