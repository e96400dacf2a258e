"""One content hash for the whole project: what the store deduplicates by and what the anchor
cache is keyed by.

The hash covers what the modality's loader reads: the file's bytes when the input names a file
(so an edited file gets a new hash, whatever its name), else the content itself: a string's
UTF-8, raw bytes, or an array's dtype, shape and bytes. Whether a ``str`` names a file or is the
content is the modality's call (``Modality.input_file``), so the core never asks which modality
it is. The digest is SHA-256 in hex (``HASH_LENGTH`` characters), the format of the store's
``content_hash`` column (docs/store.md): changing it would make stored hashes miss.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from mmbind.plugin.specs import Modality, file_input

HASH_LENGTH = 64  # hex characters of a SHA-256 digest
_READ_BLOCK = 1 << 20  # bytes read at a time, so hashing a large file needs little memory


def input_file(x: Any, modality: str | Modality | None = None) -> Path | None:
    """The file ``x`` names for ``modality`` (a name, a Modality, or None for the default rule:
    a str or path names a file), or None when ``x`` is the content itself."""
    if modality is None:
        return file_input(x)
    if isinstance(modality, str):
        from mmbind import get_modality

        modality = get_modality(modality)
    return modality.input_file(x)


def content_hash(x: Any, modality: str | Modality | None = None) -> str:
    """SHA-256 hex of one input's content, as its modality's loader reads it (module docstring).

    Raises FileNotFoundError for an input that names a missing file, TypeError for a value that
    is neither a file, a string, bytes nor a numeric array or tensor.
    """
    digest = hashlib.sha256()
    if isinstance(x, (bytes, bytearray, memoryview)):
        digest.update(x)
        return digest.hexdigest()
    path = input_file(x, modality)
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: file not found (expected a file to hash and embed)")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(_READ_BLOCK), b""):
                digest.update(block)
    elif isinstance(x, str):
        digest.update(x.encode("utf-8"))
    else:
        if hasattr(x, "detach"):  # a torch tensor, without importing torch
            x = x.detach().cpu().numpy()
        array = np.asarray(x) if isinstance(x, (np.ndarray, list, tuple, np.generic)) else None
        if array is None or array.dtype == object:
            raise TypeError(f"cannot hash a {type(x).__name__}: expected a file path, a string, bytes, "
                            f"or a numeric array or tensor")
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


__all__ = ["HASH_LENGTH", "content_hash", "input_file"]
