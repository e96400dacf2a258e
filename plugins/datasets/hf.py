"""hf-datasets: pairs kept as a local Hugging Face ``datasets`` dataset.

``path`` is a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` (its
splits are the dataset's), or Parquet files: one file, or a folder of ``*.parquet`` whose names
start with their split (``train-00000.parquet``, ``test.parquet``). Columns named after
registered modalities hold the inputs (arrays or lists of numbers, strings, images); optional
columns: ``label`` (an integer, a ClassLabel or a class name), ``key`` (the pairing key; default
the row), ``split`` (when the files do not say). Without any split, a seeded label-stratified
``test_fraction`` becomes the test split.

Nothing is copied into Python objects up front: the inputs are read from the memory-mapped
Arrow table when a sample is loaded (so the table may be larger than memory).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

import mmbind
from mmbind.plugin.specs import BindingData, InputError, ModalitySamples
from mmbind_plugins.datasets.common import class_index, split_of

SPLIT_NAMES = {"validation": "val", "valid": "val", "dev": "val"}


class ArrowColumn(Sequence):
    """One column of a ``datasets.Dataset``, read a row at a time; lists become numpy arrays,
    images (PIL) their pixel arrays."""

    def __init__(self, dataset: Any, column: str, rows: Sequence[int]):
        self.dataset = dataset.select_columns([column])  # a row access decodes this column alone
        self.column = column
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ArrowColumn(self.dataset, self.column, self.rows[index])
        if isinstance(index, (np.integer,)):
            index = int(index)
        return as_input(self.dataset[self.rows[index]][self.column])


def as_input(value: Any) -> Any:
    if isinstance(value, (str, np.ndarray)):
        return value
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    if hasattr(value, "getdata"):  # a PIL image (datasets' Image feature)
        return np.asarray(value)
    if isinstance(value, dict) and "array" in value:  # datasets' Audio feature
        return np.asarray(value["array"], dtype=np.float32), int(value["sampling_rate"])
    return value


def load_hf_dataset(path: str | Path, modalities: Sequence[str] | None = None, test_fraction: float = 0.2,
                    seed: int = 0) -> BindingData:
    splits = _read(Path(path))
    first = next(iter(splits.values()))
    columns = list(first.column_names)
    registered = set(mmbind.list_modalities())
    chosen = [c for c in columns if c in registered] if modalities is None else list(modalities)
    missing = [m for m in chosen if m not in columns]
    if missing or not chosen:
        raise InputError(f"{path}: columns {columns}; expected columns named after modalities "
                         f"({', '.join(sorted(registered))}){'; missing ' + ', '.join(missing) if missing else ''}")
    class_names, label_of = _labels(first)
    result: dict[str, dict[str, ModalitySamples]] = {}
    for name, dataset in splits.items():
        labels = [label_of(v) for v in dataset["label"]] if "label" in dataset.column_names else [-1] * len(dataset)
        keys = ([str(k) for k in dataset["key"]] if "key" in dataset.column_names
                else [f"{name}/{i}" for i in range(len(dataset))])
        if "split" in dataset.column_names:
            assigned = [SPLIT_NAMES.get(str(s), str(s)) for s in dataset["split"]]
        elif len(splits) == 1 and name == "train":
            by_key = split_of(keys, labels, test_fraction, seed)
            assigned = [by_key[k] for k in keys]
        else:
            assigned = [name] * len(dataset)
        for split in dict.fromkeys(assigned):
            rows = [i for i, s in enumerate(assigned) if s == split]
            result[split] = {m: ModalitySamples(ArrowColumn(dataset, m, rows), [labels[i] for i in rows],
                                                [keys[i] for i in rows]) for m in chosen}
    return BindingData(result, class_names, description=f"Hugging Face dataset in {path}")


def _read(path: Path) -> dict[str, Any]:
    """Split name -> datasets.Dataset."""
    import datasets

    if path.is_dir() and any((path / f).is_file() for f in ("dataset_dict.json", "state.json")):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            return {SPLIT_NAMES.get(k, k): v for k, v in loaded.items()}
        return {"train": loaded}
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path] if path.suffix == ".parquet" else []
    if not files:
        raise InputError(f"{path}: expected a folder written by save_to_disk, or Parquet files (*.parquet)")
    by_split: dict[str, list[str]] = {}
    for file in files:
        split = next((s for s in ("train", "test", "validation", "valid", "val", "dev")
                      if file.stem.lower().startswith(s)), "train")
        by_split.setdefault(SPLIT_NAMES.get(split, split), []).append(str(file))
    loaded = datasets.load_dataset("parquet", data_files=by_split)
    return dict(loaded.items())


def _labels(dataset: Any) -> tuple[list[str], Any]:
    if "label" not in dataset.column_names:
        return [], lambda v: -1
    feature = dataset.features["label"]
    if hasattr(feature, "names"):  # a ClassLabel
        return list(feature.names), lambda v: int(v)
    values = dataset.unique("label")
    if all(isinstance(v, (int, np.integer)) for v in values):
        return [str(i) for i in range(max(values) + 1)], lambda v: int(v)
    classes, label_of = class_index(str(v) for v in values)
    return classes, lambda v: label_of(str(v))
