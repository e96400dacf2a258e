"""The frozen anchor's embeddings, computed once per sample and reused every epoch.

An entry is keyed by the anchor tower's fingerprint (its config, preprocessing sizes and weights:
``Binder.fingerprint(anchor)``) and a content hash of the sample (the file's bytes for a path,
the array's dtype, shape and bytes, or the string). Changing the anchor's weights or a sample
therefore misses the cache and recomputes; nothing has to be cleared by hand.

Two places to keep it: in memory (the default; lives as long as the AnchorCache object) or an
HDF5 file (``[bind] anchor_cache_file``), which also survives a resume or a second run. The file
holds one group per anchor fingerprint; writing a new fingerprint drops the stale groups.

File layout: ``/<fingerprint>/hashes`` (N,) fixed 32-byte ASCII hex digests and
``/<fingerprint>/embeddings`` (N, dim) float32, both resizable; the group's attributes name the
modality, the dim and the mmbind version. Embeddings are written before hashes, so a killed
writer leaves only complete rows behind.

Under torch.distributed the misses are split over the ranks and all-gathered; rank 0 writes
the file while the others wait.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

import mmbind
from mmbind import distributed as dist

if TYPE_CHECKING:
    from mmbind.binder import Binder

HASH_BYTES = 32  # hex characters of a 16-byte blake2b digest
# Rows per forward pass when a whole split is encoded once without gradients (the anchor cache,
# the frozen towers' features): large enough to amortise each call's overhead, small enough for
# a batch of images to fit in memory.
ENCODE_BATCH_SIZE = 256


def content_hash(x: Any) -> str:
    """A hash of one raw sample's content: a file's bytes, an array's dtype/shape/bytes, a string."""
    h = hashlib.blake2b(digest_size=16)
    path = _as_file(x)
    if path is not None:
        h.update(b"file\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    elif isinstance(x, str):
        h.update(b"str\0" + x.encode("utf-8"))
    elif isinstance(x, bytes):
        h.update(b"bytes\0" + x)
    else:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        array = np.asarray(x)
        if array.dtype == object:
            raise TypeError(f"cannot hash a sample of type {type(x).__name__} for the anchor cache: "
                            f"expected a file path, a string, or a numeric array/tensor")
        array = np.ascontiguousarray(array)
        h.update(f"array\0{array.dtype.str}\0{array.shape}\0".encode())
        h.update(array.view(np.uint8).reshape(-1).data if array.size else b"")
    return h.hexdigest()


def _as_file(x: Any) -> Path | None:
    if isinstance(x, os.PathLike):
        return Path(x)
    if isinstance(x, str) and len(x) < 4096 and "\n" not in x:
        try:
            path = Path(x)
            return path if path.is_file() else None
        except (OSError, ValueError):  # not a usable path: it is text
            return None
    return None


class AnchorCache:
    """Anchor embeddings by (anchor fingerprint, sample content hash), in memory or in HDF5.

    ``cache.embeddings(binder, inputs)`` returns (N, dim) float32 on the CPU, encoding only the
    samples it has not seen under this anchor; ``cache.last_computed`` counts them.
    """

    def __init__(self, path: str | Path | None = None, batch_size: int = ENCODE_BATCH_SIZE):
        self.path = Path(path) if path else None
        self.batch_size = batch_size
        self._memory: dict[str, dict[str, torch.Tensor]] = {}
        self.last_computed = 0
        self.last_hits = 0

    def key(self, binder: Binder, modality: str | None = None) -> str:
        """The entries' key: the modality, its tower's fingerprint and the mmbind version."""
        modality = modality or binder.anchor_modality
        return f"{modality}-{binder.fingerprint(modality)}-v{mmbind.__version__}"

    def embeddings(self, binder: Binder, inputs: Sequence[Any], modality: str | None = None,
                   progress: bool = False) -> torch.Tensor:
        """The anchor embedding of every input, computed for cache misses only."""
        modality = modality or binder.anchor_modality
        key = self.key(binder, modality)
        hashes = [content_hash(x) for x in inputs]
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

    # --- computing ------------------------------------------------------------------------------
    def _compute(self, binder: Binder, modality: str, inputs: list, progress: bool) -> list[torch.Tensor]:
        """Encode the misses, split over ranks; every rank gets every row back."""
        world, rank = dist.world_size(), dist.rank()
        mine = inputs[rank::world]
        out = binder.encode(mine, modality, batch_size=self.batch_size, convert_to_numpy=False,
                            show_progress_bar=progress and len(mine) > 0)
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
            stored = [h.decode() for h in group["hashes"][:n]]
            rows = [i for i, h in enumerate(stored) if h in wanted]
            if not rows:
                return {}
            embeddings = torch.from_numpy(group["embeddings"][:n][rows])
        return {stored[i]: embeddings[k] for k, i in enumerate(rows)}

    def _write(self, key: str, modality: str, new: dict[str, torch.Tensor], dim: int) -> None:
        if self.path is None:
            table = self._memory.setdefault(key, {})
            for stale in [k for k in self._memory if k != key]:
                del self._memory[stale]  # an older anchor's rows can never be hit again
            table.update(new)
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
                group.create_dataset("hashes", (0,), maxshape=(None,), dtype=f"S{HASH_BYTES}", chunks=(4096,))
                group.create_dataset("embeddings", (0, dim), maxshape=(None, dim), dtype="float32",
                                     chunks=(max(1, min(4096, (1 << 20) // (4 * dim))), dim))
            group = f[key]
            if not new:
                return
            n = min(len(group["hashes"]), len(group["embeddings"]))
            rows = torch.stack(list(new.values())).float().numpy()
            group["embeddings"].resize(n + len(rows), axis=0)
            group["embeddings"][n:] = rows
            f.flush()
            group["hashes"].resize(n + len(rows), axis=0)
            group["hashes"][n:] = np.array([h.encode() for h in new], dtype=f"S{HASH_BYTES}")
