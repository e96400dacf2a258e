"""Where the content of a stored entry comes from, so the page can show it.

In order: the source file recorded in the store (``path``); else the dataset the entry was
embedded from, found by its id (``<split>/<modality>/<index>`` as `mmbind run` stores a split,
``<dataset>/<split>/<index>`` as `mmbind embed --dataset` does); else, for a language modality,
the id itself (`mmbind embed` stores a phrase under its own text). Only these are ever read:
nothing a request names is opened.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)


class Sources:
    """Raw samples (what ``Modality.load`` returns) of stored entries."""

    def __init__(self, dataset: str | None = None, options: Mapping[str, Any] | None = None):
        self.dataset = dataset
        self.options = dict(options or {})
        self._data: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_recipe(cls, path: str | Path | None) -> "Sources":
        """The dataset of a run's recipe (None or a missing file: recorded files only)."""
        if path is None or not Path(path).is_file():
            return cls()
        from mmbind.recipe import load_recipe

        recipe = load_recipe(path)
        log.info("item previews read dataset %r of %s", recipe.dataset, path)
        return cls(recipe.dataset, recipe.dataset_options)

    def data(self) -> Any:
        """The dataset, loaded on first use (a run's dataset is cached on disk, so this is quick)."""
        with self._lock:
            if self._data is None and self.dataset is not None:
                import mmbind

                self._data = mmbind.load_dataset(self.dataset, **self.options)
            return self._data

    def dataset_input(self, modality: str, entry_id: str) -> Any:
        """The dataset's input behind an entry id, or None."""
        if self.dataset is None:
            return None
        parts = entry_id.split("/")
        if len(parts) != 3 or not parts[2].isdigit():
            return None
        data = self.data()
        if parts[1] == modality and parts[0] in data.splits:
            split = parts[0]
        elif parts[0] == self.dataset and parts[1] in data.splits:
            split = parts[1]
        else:
            return None
        samples = data.splits[split].get(modality)
        index = int(parts[2])
        if samples is None or index >= len(samples):
            return None
        return samples.inputs[index]

    def raw(self, modality: str, entry: Mapping[str, Any]) -> Any:
        """The loaded sample of a stored entry, or None when its content is nowhere to be read."""
        import mmbind

        spec = mmbind.get_modality(modality)
        if entry.get("path"):
            return spec.load(entry["path"])
        found = self.dataset_input(modality, entry["id"])
        if found is not None:
            return spec.load(found)
        if spec.language:
            return entry["id"]
        return None


__all__ = ["Sources"]
