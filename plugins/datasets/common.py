"""What every user-layout dataset shares: records -> BindingData, the bad-sample check, splits,
labels and lazily read in-memory samples."""
from __future__ import annotations

import csv
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

import mmbind
from mmbind.plugin.specs import BindingData, InputError, ModalitySamples

SHOWN_BAD = 5  # how many bad file names the skip warning lists


@dataclass(frozen=True)
class Lazy:
    """A sample read only when used (a frame inside an HDF5 file, a depth PNG to decode).

    ``reader(ref)`` returns what the modality's ``load`` accepts; ``where`` names the sample in
    messages. Readers are small picklable objects, so DataLoader workers can read too.
    """

    reader: Callable[[Any], Any]
    ref: Any
    where: str

    def read(self) -> Any:
        return self.reader(self.ref)

    def __str__(self) -> str:
        return self.where


class LazySequence(Sequence):
    """Inputs of which some are ``Lazy``: indexing reads them, everything else passes through."""

    def __init__(self, items: list) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return LazySequence(self.items[index])
        return resolve(self.items[index])


def resolve(item: Any) -> Any:
    return item.read() if isinstance(item, Lazy) else item


def describe(item: Any) -> str:
    """How a sample is named in messages: its path, its Lazy location, or its type."""
    if isinstance(item, (str, Path, Lazy)):
        return str(item)
    return f"in-memory {type(item).__name__}"


@dataclass
class Record:
    """One paired sample: the same key in every modality it has."""

    split: str
    key: str
    inputs: dict[str, Any]
    label: int = -1
    meta: dict = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)  # names in-memory inputs in messages


def check_records(records: list[Record], dataset: str, skip_bad: bool, min_modalities: int = 1) -> list[Record]:
    """Load every input with its modality's ``load``. skip_bad=False: the first bad one raises
    InputError naming it. skip_bad=True: bad inputs are dropped (and records left with fewer
    than ``min_modalities`` inputs), with one warning giving the count and the first names."""
    loaders = {m: mmbind.get_modality(m).load for m in sorted({m for r in records for m in r.inputs})}
    bad: list[str] = []
    kept = []
    for record in records:
        for modality in list(record.inputs):
            item = record.inputs[modality]
            try:
                loaders[modality](resolve(item))
            except InputError as error:
                where = record.where.get(modality)
                message = f"{where}: {error}" if where else str(error)
                if not skip_bad:
                    raise InputError(f"dataset {dataset!r}, {modality} sample {record.key!r}: {message} "
                                     f"(pass skip_bad=True to drop bad samples)") from error
                bad.append(where or describe(item))
                del record.inputs[modality]
        if len(record.inputs) >= min_modalities:
            kept.append(record)
    if bad:
        shown = ", ".join(bad[:SHOWN_BAD]) + (", ..." if len(bad) > SHOWN_BAD else "")
        warnings.warn(f"dataset {dataset!r}: skipped {len(bad)} bad sample file(s) that their modality "
                      f"could not load ({len(records) - len(kept)} record(s) dropped): {shown}",
                      RuntimeWarning, stacklevel=3)
    return kept


def build(
    records: list[Record],
    dataset: str,
    class_names: Sequence[str] = (),
    skip_bad: bool = False,
    check: bool = True,
    min_modalities: int = 1,
    description: str = "",
) -> BindingData:
    """Records -> BindingData (split -> modality -> samples), checking samples first."""
    if check:
        records = check_records(records, dataset, skip_bad, min_modalities)
    elif skip_bad:
        raise ValueError(f"dataset {dataset!r}: skip_bad=True needs check=True (bad samples are found by loading them)")
    if not records:
        raise InputError(f"dataset {dataset!r}: no usable samples found")
    grouped: dict[str, dict[str, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        for modality in record.inputs:
            grouped[record.split][modality].append(record)
    splits: dict[str, dict[str, ModalitySamples]] = {}
    for split, by_modality in grouped.items():
        splits[split] = {}
        for modality, rows in sorted(by_modality.items()):
            items = [r.inputs[modality] for r in rows]
            inputs = LazySequence(items) if any(isinstance(i, Lazy) for i in items) else items
            splits[split][modality] = ModalitySamples(
                inputs, [r.label for r in rows], [r.key for r in rows], [dict(r.meta) for r in rows])
    return BindingData(splits, list(class_names), description=description)


def split_of(keys: Sequence[str], labels: Sequence[int], test_fraction: float, seed: int) -> dict[str, str]:
    """key -> "train" | "test": a seeded shuffle within each label (stratified), so the split is
    the same on every machine and each class keeps about ``test_fraction`` of its samples."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction!r}: expected a fraction in [0, 1)")
    by_label: dict[int, list[str]] = defaultdict(list)
    for key, label in zip(keys, labels):
        by_label[label].append(key)
    rng = np.random.default_rng(seed)
    result = {}
    for label in sorted(by_label):
        group = sorted(set(by_label[label]))
        order = rng.permutation(len(group))
        n_test = int(round(len(group) * test_fraction))
        for rank, i in enumerate(order):
            result[group[i]] = "test" if rank < n_test else "train"
    return result


def class_index(values: Iterable[str]) -> tuple[list[str], Callable[[str], int]]:
    """Class names from label values, and value -> class index ("" -> -1). Names sort
    alphabetically; labels that are all non-negative integers keep their value as the index
    (class names "0" ... str(max))."""
    names = sorted({v for v in values if v})
    if names and all(_is_int(n) and int(n) >= 0 for n in names):
        return [str(i) for i in range(max(int(n) for n in names) + 1)], lambda v: int(v) if v else -1
    index = {name: i for i, name in enumerate(names)}
    return names, lambda v: index[v] if v else -1


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def read_labels_csv(path: Path) -> dict[str, str]:
    """stem -> class name from a CSV with a header: a key column (stem, key, id or filename) and
    a label column (label, class or category)."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        key_col = next((f for f in ("stem", "key", "id", "filename") if f in fields), None)
        label_col = next((f for f in ("label", "class", "category") if f in fields), None)
        if key_col is None or label_col is None:
            raise InputError(f"{path}: header {reader.fieldnames}; expected a key column (stem, key, id or "
                             f"filename) and a label column (label, class or category)")
        labels = {}
        for row in reader:
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            key = row[key_col]
            if key_col == "filename":
                key = Path(key).stem
            if key and row[label_col]:
                labels[key] = row[label_col]
    return labels


def files_by_stem(folder: Path, extensions: Sequence[str]) -> dict[str, Path]:
    """Non-hidden files of ``folder`` by stem (only the given extensions, if any); two files with
    one stem are ambiguous and raise InputError naming both."""
    found: dict[str, Path] = {}
    allowed = {e.lower() for e in extensions}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if allowed and path.suffix.lower() not in allowed:
            continue
        if path.stem in found:
            raise InputError(f"{found[path.stem]} and {path}: two files with the stem {path.stem!r} in one "
                             f"modality folder; expected one file per stem")
        found[path.stem] = path
    return found


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise InputError(f"{path}: no such folder; expected {what}")
    return path
