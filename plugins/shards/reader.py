"""The "webdataset" dataset: shards written by ``mmbind shards write`` (see writer.py).

The splits named in ``stream`` (default: train) are ``SampleStream``s read shard by shard, so
binding never holds them in memory; the others (test, val: what evaluation and ``embed`` use)
are read into memory.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Sequence

from mmbind.plugin.specs import BindingData, InputError, ModalitySamples, SampleStream
from mmbind_plugins.shards.codec import decode_record
from mmbind_plugins.shards.writer import FORMAT, INDEX, VERSION


def read_shard(path: str) -> Iterator[dict]:
    """The decoded records of one shard, in order."""
    from webdataset.tariterators import tarfile_samples

    try:
        for files in tarfile_samples([{"url": path}]):
            yield decode_record(files)
    except (OSError, KeyError, ValueError) as error:
        raise InputError(f"{path}: not a readable mmbind shard ({error}); rewrite it with `mmbind shards write`"
                         ) from error


def read_index(root: Path) -> dict:
    path = root / INDEX
    if not path.is_file():
        raise InputError(f"{root}: no {INDEX}; expected a folder written by `mmbind shards write`")
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT or index.get("version", 0) > VERSION:
        raise InputError(f"{path}: format {index.get('format')!r} version {index.get('version')!r}; expected "
                         f"{FORMAT!r} version <= {VERSION}")
    return index


def load_shards(path: str | Path, stream: Sequence[str] = ("train",)) -> BindingData:
    """The dataset in ``path``; the splits in ``stream`` stream from their shards."""
    import webdataset.tariterators  # noqa: F401  (imported once here, before loader workers fork)

    root = Path(path)
    index = read_index(root)
    splits: dict[str, dict] = {}
    for split, by_modality in index["splits"].items():
        splits[split] = {}
        for modality, entry in by_modality.items():
            shards = [str(root / name) for name in entry["shards"]]
            missing = [s for s in shards if not Path(s).is_file()]
            if missing:
                raise InputError(f"{root}: {len(missing)} shard(s) listed in {INDEX} are missing, e.g. {missing[0]}")
            if split in stream:
                splits[split][modality] = SampleStream(shards, list(entry["counts"]), read_shard)
            else:
                records = [r for s in shards for r in read_shard(s)]
                splits[split][modality] = ModalitySamples(
                    [r["input"] for r in records], [r["label"] for r in records], [r["key"] for r in records],
                    [r["meta"] for r in records])
    return BindingData(splits, index["class_names"], frozenset(index["simulated"]),
                       index["description"] or f"WebDataset shards in {root}")
