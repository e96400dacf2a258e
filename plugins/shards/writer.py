"""Write a dataset's splits as WebDataset tar shards plus ``index.json`` (the shards of every
split and modality, with their sample counts, the anchor and the class names).

Layout: ``OUT/index.json``, ``OUT/<split>/<modality>/NNNNNN.tar``. A bound modality's record
carries the anchor sample it is paired with, drawn (seeded) among the anchor samples its key
pairs with, so binding reads the pairs in one pass; samples that pair with no anchor are left out
of its training split. ``index.json`` is written last: a folder without it is incomplete.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import mmbind
from mmbind.errors import UserError
from mmbind.pairing import pair_index
from mmbind.plugin.specs import BindingData, ModalitySamples
from mmbind_plugins.shards import SHARD_SIZE
from mmbind_plugins.shards.codec import encode_record

logger = logging.getLogger(__name__)

INDEX = "index.json"
FORMAT = "mmbind-webdataset"
VERSION = 1


def stored(modality: str, x: Any) -> Any:
    """What a shard holds for input ``x``: a file is stored as what the modality loads from it."""
    spec = mmbind.get_modality(modality)
    return spec.load(x) if spec.input_file(x) is not None else x


def write_shards(data: BindingData, anchor: str, out: str | Path, shard_size: int = SHARD_SIZE, seed: int = 0,
                 modalities: Sequence[str] | None = None, source: str = "") -> dict:
    """Write every split of ``data`` (its ``modalities``, default all) to ``out``; return the index."""
    import webdataset

    out = Path(out)
    if (out / INDEX).exists():
        raise UserError(f"{out}: already holds shards ({INDEX}); write to a new folder or delete it first")
    if shard_size < 1:
        raise UserError(f"shard size {shard_size}: expected at least 1 sample per shard")
    rng = np.random.default_rng(seed)
    splits: dict[str, dict[str, dict]] = {}
    for split, by_modality in data.splits.items():
        chosen = [m for m in by_modality if modalities is None or m in modalities]
        splits[split] = {}
        for modality in chosen:
            samples = by_modality[modality]
            if not isinstance(samples, ModalitySamples):
                raise UserError(f"split {split!r}, {modality!r}: already streamed; shards are written from "
                                f"in-memory datasets")
            partner = by_modality.get(anchor) if modality != anchor else None
            rows = _rows(samples, partner, rng)
            if partner is not None and len(rows) < len(samples):
                logger.warning("%s/%s: %d sample(s) pair with no %r sample and are left out", split, modality,
                               len(samples) - len(rows), anchor)
            folder = out / split / modality
            folder.mkdir(parents=True, exist_ok=True)
            names, counts = [], []
            for start in range(0, len(rows), shard_size):
                name = f"{split}/{modality}/{len(names):06d}.tar"
                part = rows[start:start + shard_size]
                tmp = out / f"{name}.tmp"
                with webdataset.TarWriter(str(tmp), encoder=False) as sink:
                    for j, a in part:
                        sink.write(encode_record(
                            j, stored(modality, samples.inputs[j]), samples.labels[j], samples.keys[j],
                            samples.meta[j] if samples.meta is not None else None,
                            None if a is None else stored(anchor, partner.inputs[a])))
                os.replace(tmp, out / name)
                names.append(name)
                counts.append(len(part))
            splits[split][modality] = {"shards": names, "counts": counts}
    index = {"format": FORMAT, "version": VERSION, "anchor": anchor, "class_names": list(data.class_names),
             "simulated": sorted(data.simulated), "description": data.description, "source": source,
             "splits": splits}
    (out / INDEX).write_text(json.dumps(index, indent=1))
    return index


def _rows(samples: ModalitySamples, partner: ModalitySamples | None, rng: np.random.Generator
          ) -> list[tuple[int, int | None]]:
    """(sample, paired anchor sample or None) for every sample written."""
    if partner is None:
        return [(j, None) for j in range(len(samples))]
    matches = pair_index(partner.keys, samples.keys)
    return [(j, m[int(rng.integers(len(m)))]) for j, m in enumerate(matches) if m]
