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


# ustar header fields: name, size, type; block size
BLOCK = 512
PLAIN_TYPES = (b"0", b"\0")
PAX_TYPES = (b"x", b"g")


def read_shard(path: str) -> Iterator[dict]:
    """The decoded records of one shard, in order.

    The shard is read whole (it is shuffled whole anyway) and its members split by a small
    ustar parser: on this 2-core machine the tarfile-based reader of the webdataset library
    took about 1.5 ms a record, this about 0.02 ms. A shard this parser does not know (GNU
    long names, sparse files) goes through webdataset's own reader."""
    try:
        data = Path(path).read_bytes()
        grouped = _members(data)
        if grouped is None:
            from webdataset.tariterators import tarfile_samples

            grouped = iter(tarfile_samples([{"url": path}]))
        for files in grouped:
            yield decode_record(files)
    except (OSError, KeyError, ValueError) as error:
        raise InputError(f"{path}: not a readable mmbind shard ({error}); rewrite it with `mmbind shards write`"
                         ) from error


def _members(data: bytes) -> list[dict] | None:
    """The records of a tar file held in ``data`` (name suffixes -> bytes), or None when it has
    members other than plain files and pax headers."""
    records: list[dict] = []
    pos, pax_path = 0, None
    while pos + BLOCK <= len(data) and data[pos] != 0:
        header = data[pos:pos + BLOCK]
        size = int(header[124:136].rstrip(b"\0 ") or b"0", 8)
        kind = header[156:157]
        body = data[pos + BLOCK:pos + BLOCK + size]
        pos += BLOCK + -(-size // BLOCK) * BLOCK
        if kind in PAX_TYPES:
            fields = _pax(body)
            if "size" in fields:  # a member over 8 GiB: not a shard this parser reads
                return None
            pax_path = fields.get("path") if kind == b"x" else pax_path
            continue
        if kind not in PLAIN_TYPES:
            return None
        prefix = header[345:500].rstrip(b"\0").decode()
        name = pax_path or "/".join(p for p in (prefix, header[:100].rstrip(b"\0").decode()) if p)
        pax_path = None
        key, _, suffix = name.rpartition("/")[2].partition(".")
        if not records or records[-1]["__key__"] != key:
            records.append({"__key__": key})
        records[-1][suffix.lower()] = body
    return records


def _pax(body: bytes) -> dict[str, str]:
    """A pax extended header's records ("LEN key=value\n")."""
    fields, pos = {}, 0
    while pos < len(body):
        length = int(body[pos:body.index(b" ", pos)])
        key, _, value = body[body.index(b" ", pos) + 1:pos + length - 1].partition(b"=")
        fields[key.decode()] = value.decode()
        pos += length
    return fields


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
