"""paired-folder: root/<modality>/<stem>.<ext>, files of different modalities pair by stem.

Optional: root/labels.csv (stem,label); split folders root/train/<modality>/... and
root/test/<modality>/... (also val/); without them a seeded, label-stratified test_fraction.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import mmbind
from mmbind.plugin.specs import BindingData, InputError
from mmbind_plugins.datasets.common import (
    Record, build, class_index, files_by_stem, read_labels_csv, require_dir, split_of)

SPLIT_FOLDERS = ("train", "val", "test")


def load_paired_folder(
    root: str | Path,
    modalities: Sequence[str] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    labels: str = "labels.csv",
    skip_bad: bool = False,
    check: bool = True,
) -> BindingData:
    """Pairs by stem across modality folders; a stem found in one modality only is dropped
    (it pairs with nothing) with a warning."""
    root = require_dir(Path(root), "a folder with one sub-folder per modality (image/, audio/, ...)")
    split_dirs = {s: root / s for s in SPLIT_FOLDERS if (root / s).is_dir()}
    bases = split_dirs or {"": root}
    label_names = read_labels_csv(root / labels) if labels and (root / labels).is_file() else {}
    classes, label_of = class_index(label_names.values())

    records: list[Record] = []
    unpaired: list[Path] = []
    for split, base in bases.items():
        files = _modality_files(base, modalities)
        stems = sorted({s for by_stem in files.values() for s in by_stem})
        for stem in stems:
            inputs = {m: by_stem[stem] for m, by_stem in files.items() if stem in by_stem}
            if len(inputs) < 2:
                unpaired.extend(inputs.values())
                continue
            records.append(Record(split, stem, inputs, label_of(label_names.get(stem, "")),
                                  {"stem": stem}))
    if unpaired:
        warnings.warn(f"paired-folder {root}: {len(unpaired)} file(s) have no file with the same stem in "
                      f"another modality folder and were left out: "
                      f"{', '.join(map(str, unpaired[:5]))}{', ...' if len(unpaired) > 5 else ''}",
                      RuntimeWarning, stacklevel=2)
    if not split_dirs:
        assigned = split_of([r.key for r in records], [r.label for r in records], test_fraction, seed)
        for record in records:
            record.split = assigned[record.key]
    return build(records, "paired-folder", classes, skip_bad, check, min_modalities=2,
                 description=f"paired files by stem from {root}")


def _modality_files(base: Path, modalities: Sequence[str] | None) -> dict[str, dict[str, Path]]:
    registered = set(mmbind.list_modalities())
    folders = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if modalities is None:
        chosen = [f for f in folders if f in registered]
    else:
        chosen = list(modalities)
        missing = [m for m in chosen if m not in folders]
        if missing:
            raise InputError(f"{base}: no folder for modality {', '.join(missing)}; found folders {folders}")
        unknown = [m for m in chosen if m not in registered]
        if unknown:
            raise InputError(f"{base}: {', '.join(unknown)} is not a registered modality "
                             f"(registered: {', '.join(sorted(registered))})")
    if len(chosen) < 2:
        raise InputError(f"{base}: found modality folders {chosen} among {folders}; expected at least two "
                         f"folders named after registered modalities ({', '.join(sorted(registered))})")
    return {m: files_by_stem(base / m, mmbind.get_modality(m).extensions) for m in chosen}
