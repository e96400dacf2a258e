"""The on-disk cache of a built digits world: one .npy per array, a JSON manifest, atomic.

A build is written into a temporary sibling folder and renamed into place at the end, so a
killed build never leaves a half cache behind. Arrays load with allow_pickle=False; strings
(text, keys, paths) and per-sample meta live in the JSON manifest.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mmbind import InputError

MANIFEST = "manifest.json"


def is_complete(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def write(folder: Path, arrays: dict[str, np.ndarray], manifest: dict[str, Any],
          replace: bool = False) -> Path:
    """Write arrays (name -> array; name becomes '<name>.npy') and the manifest atomically.
    replace=True swaps out an existing cache (the old one is deleted after the swap)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        for name, array in arrays.items():
            if array.dtype == object:
                raise TypeError(f"array {name!r} has dtype object; the cache stores plain arrays")
            np.save(tmp / f"{name}.npy", array, allow_pickle=False)
        manifest = dict(manifest, arrays=sorted(arrays))
        with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
            json.dump(manifest, f, ensure_ascii=False)
        if replace and folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
            os.rename(folder, old / "data")
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.rename(tmp, folder)
        except OSError:
            # Another process finished the same build first: keep theirs (same seed, same data).
            if not is_complete(folder):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def read(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a cache written by `write`; raises InputError naming the file if it is damaged."""
    path = folder / MANIFEST
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: unreadable digits-world manifest ({e}); delete the folder "
                         f"or pass rebuild=True") from e
    arrays = {}
    for name in manifest.get("arrays", []):
        file = folder / f"{name}.npy"
        try:
            arrays[name] = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InputError(f"{file}: unreadable cached array ({e}); delete {folder} or pass "
                             f"rebuild=True") from e
    return arrays, manifest
