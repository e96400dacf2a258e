"""One sample <-> the files of one WebDataset record.

A record ``NNNNNNNN`` holds ``NNNNNNNN.input.<ext>`` (the sample), for a bound modality
``NNNNNNNN.anchor.<ext>`` (its paired anchor sample) and ``NNNNNNNN.json`` (label, key, meta).
A value is stored as text (``.txt``: a string), an array (``.npy``, read without pickle) or a
tuple of those and numbers (``.0.npy``, ``.1.npy``, ...: an audio waveform and its sample rate).
Inputs that name a file are stored as what the modality's ``load`` makes of the file.
"""
from __future__ import annotations

import ast
import io
import json
from functools import lru_cache
from typing import Any

import numpy as np

from mmbind.plugin.specs import InputError


def encode_value(name: str, value: Any) -> dict[str, bytes]:
    """The files (suffix -> bytes) of one value called ``name`` ("input" or "anchor")."""
    if isinstance(value, str):
        return {f"{name}.txt": value.encode()}
    if isinstance(value, tuple):
        files: dict[str, bytes] = {}
        for i, part in enumerate(value):
            files.update(encode_value(f"{name}.{i}", part))
        return files
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype == object:
        raise InputError(f"{name}: a {type(value).__name__} cannot be stored in a shard; expected a string, an "
                         f"array, or a tuple of arrays and numbers")
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return {f"{name}.npy": buffer.getvalue()}


def decode_value(name: str, files: dict[str, bytes]) -> Any:
    """The value ``encode_value`` stored under ``name``; KeyError if there is none."""
    if f"{name}.txt" in files:
        return files[f"{name}.txt"].decode()
    if f"{name}.npy" in files:
        array = read_npy(files[f"{name}.npy"])
        return array.item() if array.ndim == 0 else array
    parts = []
    while any(k.startswith(f"{name}.{len(parts)}.") for k in files):
        parts.append(decode_value(f"{name}.{len(parts)}", files))
    if not parts:
        raise KeyError(name)
    return tuple(parts)


def read_npy(data: bytes) -> np.ndarray:
    """An .npy file's array (never a pickle). The header, the same for every sample of a kind,
    is parsed once: reading is then a copy of the bytes, not a parse per sample."""
    if data[:6] != b"\x93NUMPY" or data[6] not in (1, 2, 3):
        return np.load(io.BytesIO(data), allow_pickle=False)  # let numpy say what is wrong
    length_bytes = 2 if data[6] == 1 else 4
    start = 8 + length_bytes
    offset = start + int.from_bytes(data[8:start], "little")
    dtype, shape, fortran = _npy_header(data[start:offset])
    array = np.frombuffer(data, dtype=dtype, count=int(np.prod(shape)), offset=offset)
    return array.reshape(shape, order="F" if fortran else "C").copy()


@lru_cache(maxsize=64)
def _npy_header(header: bytes) -> tuple[np.dtype, tuple[int, ...], bool]:
    fields = ast.literal_eval(header.decode("latin1"))
    dtype = np.dtype(fields["descr"])
    if dtype.hasobject:
        raise ValueError("an .npy of Python objects: shards never hold pickles")
    return dtype, tuple(fields["shape"]), bool(fields["fortran_order"])


def encode_record(index: int, sample: Any, label: int, key: str, meta: dict | None,
                  anchor: Any = None) -> dict[str, Any]:
    """A WebDataset record (for ``webdataset.TarWriter``) of one sample."""
    record: dict[str, Any] = {"__key__": f"{index:08d}"}
    record.update(encode_value("input", sample))
    if anchor is not None:
        record.update(encode_value("anchor", anchor))
    record["json"] = json.dumps({"label": int(label), "key": str(key), "meta": meta or {}}).encode()
    return record


def decode_record(files: dict[str, Any]) -> dict[str, Any]:
    """A read record -> {"input", "label", "key", "meta"[, "anchor"]}."""
    info = json.loads(files["json"])
    record = {"input": decode_value("input", files), "label": info["label"], "key": info["key"],
              "meta": info.get("meta") or {}}
    try:
        record["anchor"] = decode_value("anchor", files)
    except KeyError:
        pass
    return record
