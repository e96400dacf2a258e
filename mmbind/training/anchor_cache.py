"""The frozen anchor's embeddings, computed once per sample and reused every epoch.

An entry is keyed by the anchor tower's fingerprint (its config, preprocessing sizes and weights:
``Binder.fingerprint(anchor)``) and the content hash of the sample (``mmbind.hashing``: the
file's bytes when the modality says the input names a file, else the array's dtype, shape and
bytes, or the string). Changing the anchor's weights or a sample
therefore misses the cache and recomputes; nothing has to be cleared by hand.

Two places to keep it: in memory (the default; lives as long as the AnchorCache object) or an
HDF5 file (``[bind] anchor_cache_file``), which also survives a resume or a second run. The file
holds one group per anchor fingerprint; writing a new fingerprint drops the stale groups.

File layout: ``/<key>/hashes`` (N,) fixed 64-byte ASCII hex digests and
``/<key>/embeddings`` (N, dim) float32, both resizable; the group's attributes name the
modality, the dim and the mmbind version. Embeddings are written before hashes, so a killed
writer leaves only complete rows behind.

Under torch.distributed the misses are split over the ranks and all-gathered; rank 0 writes
the file while the others wait.

Streamed data (``batch``): each batch's anchor rows are looked up by their content hashes and
the misses are computed from the batch itself, with no collective; under torch.distributed every
rank then keeps its own file (``per_rank``: ``name.rankN.h5``), since the ranks see different
data. The file's hashes are indexed in memory (a dict, about 150 bytes per anchor sample), so a
lookup reads only the rows it needs.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

import mmbind
from mmbind import distributed as dist
from mmbind.hashing import HASH_LENGTH, content_hash

if TYPE_CHECKING:
    from mmbind.binder import Binder

CACHE_FORMAT = 2  # 2: SHA-256 content hashes of mmbind.hashing (64 hex characters); 1: blake2b, 32
# Rows per forward pass when a whole split is encoded once without gradients (the anchor cache,
# the frozen towers' features): large enough to amortise each call's overhead, small enough for
# a batch of images to fit in memory.
ENCODE_BATCH_SIZE = 256


class AnchorCache:
    """Anchor embeddings by (anchor fingerprint, sample content hash), in memory or in HDF5.

    ``cache.embeddings(binder, inputs)`` returns (N, dim) float32 on the CPU, encoding only the
    samples it has not seen under this anchor; ``cache.last_computed`` counts them.
    """

    def __init__(self, path: str | Path | None = None, batch_size: int = ENCODE_BATCH_SIZE, per_rank: bool = False):
        self.path = Path(path) if path else None
        self.per_rank = per_rank
        if self.path is not None and per_rank and dist.world_size() > 1:
            self.path = self.path.with_name(f"{self.path.stem}.rank{dist.rank()}{self.path.suffix}")
        self.batch_size = batch_size
        self._memory: dict[str, dict[str, torch.Tensor]] = {}
        self._index: dict[str, dict[str, int]] = {}  # file mode: key -> hash -> row
        self.last_computed = 0
        self.last_hits = 0

    def key(self, binder: Binder, modality: str | None = None) -> str:
        """The entries' key: the modality, its tower's fingerprint (without a shared projection, which
        the entries leave out: it trains), the mmbind version and the cache format."""
        modality = modality or binder.anchor_modality
        return f"{modality}-{binder.fingerprint(modality, project=False)}-v{mmbind.__version__}-f{CACHE_FORMAT}"

    def embeddings(self, binder: Binder, inputs: Sequence[Any], modality: str | None = None,
                   progress: bool = False) -> torch.Tensor:
        """The anchor embedding of every input, computed for cache misses only."""
        modality = modality or binder.anchor_modality
        key = self.key(binder, modality)
        hashes = [content_hash(x, modality) for x in inputs]
        first: dict[str, int] = {}
        for i, h in enumerate(hashes):
            first.setdefault(h, i)
        found = self._read(key, set(first))
        misses = [h for h in first if h not in found]
        computed = self._compute(binder, modality, [inputs[first[h]] for h in misses], progress)
        new = dict(zip(misses, computed))
        self._write(key, modality, new, binder.dim)
        found.update(new)
        self.last_computed, self.last_hits = len(misses), len(first) - len(misses)
        if not hashes:
            return torch.empty(0, binder.dim)
        return torch.stack([found[h] for h in hashes])

    def batch(self, binder: Binder, hashes: Sequence[str], compute: Callable[[], torch.Tensor],
              modality: str | None = None) -> torch.Tensor:
        """One streamed batch's anchor embeddings (B, dim) on the CPU, by content hash: read from
        the cache, or, when any is missing, ``compute()`` (the whole batch's, on this rank) and
        the missing rows stored."""
        modality = modality or binder.anchor_modality
        key = self.key(binder, modality)
        found = self._read(key, set(hashes))
        if len(found) < len(set(hashes)):
            computed = compute().detach().float().cpu()
            new = {h: computed[i] for i, h in enumerate(hashes) if h not in found}
            self._write(key, modality, new, binder.dim)
            found.update(new)
        return torch.stack([found[h] for h in hashes])

    # --- computing ------------------------------------------------------------------------------
    def _compute(self, binder: Binder, modality: str, inputs: list, progress: bool) -> list[torch.Tensor]:
        """Encode the misses, split over ranks; every rank gets every row back."""
        world, rank = dist.world_size(), dist.rank()
        mine = inputs[rank::world]
        out = binder.encode(mine, modality, batch_size=self.batch_size, convert_to_numpy=False,
                            show_progress_bar=progress and len(mine) > 0, project=False)
        if world > 1:
            counts = [len(inputs[r::world]) for r in range(world)]
            device = next(binder.parameters()).device
            parts = [p.cpu() for p in dist.all_gather_rows(out.to(device), counts)]
            rows: list[torch.Tensor] = [torch.empty(0)] * len(inputs)
            for r, part in enumerate(parts):
                rows[r::world] = list(part)
            return rows
        return list(out)

    # --- storage --------------------------------------------------------------------------------
    def _read(self, key: str, wanted: set[str]) -> dict[str, torch.Tensor]:
        if self.path is None:
            table = self._memory.get(key, {})
            return {h: table[h] for h in wanted if h in table}
        if not self.path.is_file():
            return {}
        import h5py

        with h5py.File(self.path, "r") as f:
            if key not in f:
                return {}
            group = f[key]
            n = min(len(group["hashes"]), len(group["embeddings"]))
            if len(self._index.get(key, ())) != n:  # new, or another process has written rows
                self._index = {key: {h.decode(): i for i, h in enumerate(group["hashes"][:n])}}
            index = self._index[key]
            hits = sorted((index[h], h) for h in wanted if h in index)
            if not hits:
                return {}
            embeddings = torch.from_numpy(group["embeddings"][[i for i, _ in hits]])
        return {h: embeddings[k] for k, (_, h) in enumerate(hits)}

    def _write(self, key: str, modality: str, new: dict[str, torch.Tensor], dim: int) -> None:
        if self.path is None:
            table = self._memory.setdefault(key, {})
            for stale in [k for k in self._memory if k != key]:
                del self._memory[stale]  # an older anchor's rows can never be hit again
            table.update(new)
            return
        if self.per_rank:
            if new or not self.path.is_file():
                self._append(key, modality, new, dim)
            return
        if dist.is_main() and (new or not self.path.is_file()):
            self._append(key, modality, new, dim)
        dist.barrier()  # the other ranks read the file only after rank 0 has written it

    def _append(self, key: str, modality: str, new: dict[str, torch.Tensor], dim: int) -> None:
        import h5py

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(self.path, "a") as f:
            for stale in [k for k in f if k != key]:
                del f[stale]
            if key not in f:
                group = f.create_group(key)
                group.attrs.update({"modality": modality, "dim": dim, "mmbind_version": mmbind.__version__})
                group.create_dataset("hashes", (0,), maxshape=(None,), dtype=f"S{HASH_LENGTH}", chunks=(4096,))
                group.create_dataset("embeddings", (0, dim), maxshape=(None, dim), dtype="float32",
                                     chunks=(max(1, min(4096, (1 << 20) // (4 * dim))), dim))
            group = f[key]
            if not new:
                return
            n = min(len(group["hashes"]), len(group["embeddings"]))
            if key in self._index:
                self._index[key].update((h, n + i) for i, h in enumerate(new))
            rows = torch.stack(list(new.values())).float().numpy()
            group["embeddings"].resize(n + len(rows), axis=0)
            group["embeddings"][n:] = rows
            f.flush()
            group["hashes"].resize(n + len(rows), axis=0)
            group["hashes"][n:] = np.array([h.encode() for h in new], dtype=f"S{HASH_LENGTH}")
