"""The supervised baselines' results on disk, so that a baseline is trained once per data,
encoder and seed, not once per run.

A same-size supervised encoder does not depend on the binder at all: only on the training
samples and labels it is given, the tower's architecture, options and preprocessing, the
training settings and the seed. Its predictions on the evaluated splits are stored under
``<cache dir>/baselines/<key>.npz`` (plain arrays, read without pickle) with its info in
``<key>.json``; the key hashes all of the above, the evaluated inputs and the mmbind and torch
versions. The cache dir is $MMBIND_CACHE, else ~/.cache/mmbind. The time caps a training ran
under are stored in its info: one the cap stopped is reused only under caps no larger
(baselines.py decides).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import mmbind
from mmbind.hashing import content_hash

VERSION = 1  # bump when what a baseline computes changes, so older entries are not reused


def cache_dir() -> Path:
    """mmbind's cache folder: $MMBIND_CACHE, else ~/.cache/mmbind."""
    env = os.environ.get("MMBIND_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "mmbind"


def inputs_digest(inputs: Sequence[Any], modality: str) -> str:
    """One SHA-256 over the content hashes of ``inputs`` (in order); an input the content hash
    cannot read (a string its modality takes for a missing file) counts by its ``repr``."""
    digest = hashlib.sha256()
    for x in inputs:
        try:
            digest.update(content_hash(x, modality).encode())
        except (FileNotFoundError, TypeError):
            digest.update(repr(x).encode())
    return digest.hexdigest()


def baseline_key(modality: str, tower: Any, train_inputs: Sequence[Any], labels: Sequence[int],
                 evaluated: dict[str, Sequence[Any]], n_classes: int, settings: dict[str, Any], seed: int) -> str:
    """The cache key of one supervised baseline (module docstring): hex SHA-256."""
    import torch

    described = {
        "version": VERSION, "mmbind": mmbind.__version__, "torch": torch.__version__,
        "modality": modality, "encoder": tower.encoder, "options": tower.options,
        "preprocess": tower.preprocess, "augment": tower.augment,
        "pretrained": mmbind.get_encoder(tower.encoder).pretrained,
        "train": inputs_digest(train_inputs, modality), "labels": [int(v) for v in labels],
        "evaluated": {split: inputs_digest(xs, modality) for split, xs in sorted(evaluated.items())},
        "n_classes": n_classes, "settings": settings, "seed": seed,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


class BaselineCache:
    """Stored baseline predictions by key; ``root`` None: ``cache_dir() / "baselines"``."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else cache_dir() / "baselines"

    def get(self, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """(predictions per split, info) stored under ``key``, or None (absent or unreadable)."""
        arrays, info = self.root / f"{key}.npz", self.root / f"{key}.json"
        try:
            with np.load(arrays, allow_pickle=False) as stored:
                predictions = {split: stored[split] for split in stored.files}
            return predictions, json.loads(info.read_text())
        except (OSError, ValueError, KeyError):
            return None

    def put(self, key: str, predictions: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        """Store one baseline atomically (arrays first: an entry is complete once its .json exists)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for suffix, write in ((".npz", lambda f: np.savez(f, **predictions)),
                              (".json", lambda f: f.write(json.dumps(info).encode()))):
            handle, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{key}.", suffix=suffix)
            with os.fdopen(handle, "wb") as f:
                write(f)
            os.replace(tmp, self.root / f"{key}{suffix}")
