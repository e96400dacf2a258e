"""esc50: the ESC-50 environmental sound layout, audio/*.wav + meta/esc50.csv.

meta/esc50.csv has filename, fold (1-5), target (0-49), category (and esc10, src_file, take).
Clips of ``test_fold`` form the test split, the other folds train; test_fold=None puts every
clip in test (zero-shot evaluation over all 2000 clips). Class names are the categories with
"_" read as a space ("dog", "crying baby"), ready for text prompts.
"""
from __future__ import annotations

import csv
from pathlib import Path

from mmbind.plugin.specs import BindingData, InputError
from mmbind_plugins.datasets.common import Record, build, require_dir

REQUIRED = ("filename", "fold", "target", "category")


def load_esc50(
    root: str | Path,
    test_fold: int | None = 5,
    esc10: bool = False,
    skip_bad: bool = False,
    check: bool = True,
) -> BindingData:
    root = require_dir(Path(root), "the ESC-50 folder holding audio/ and meta/esc50.csv")
    meta_path = root / "meta" / "esc50.csv"
    if not meta_path.is_file():
        raise InputError(f"{meta_path}: no such file; expected ESC-50's meta/esc50.csv")
    rows = _read_meta(meta_path)
    if esc10:
        rows = [r for r in rows if r.get("esc10", "").strip().lower() == "true"]
        if not rows:
            raise InputError(f"{meta_path}: no row has esc10 = True; expected the ESC-10 subset marked")
    folds = sorted({r["fold"] for r in rows})
    if test_fold is not None and test_fold not in folds:
        raise InputError(f"{meta_path}: test_fold={test_fold!r} but the folds are {folds}")

    names: dict[int, str] = {}
    for r in rows:
        if names.setdefault(r["target"], r["category"]) != r["category"]:
            raise InputError(f"{meta_path}: target {r['target']} is both {names[r['target']]!r} and "
                             f"{r['category']!r}; expected one category per target")
    targets = sorted(names)  # ESC-10 keeps 10 of the 50 targets: renumber them 0..9 in order
    index = {t: i for i, t in enumerate(targets)}
    class_names = [names[t].replace("_", " ") for t in targets]

    records = []
    for r in rows:
        split = "test" if test_fold is None or r["fold"] == test_fold else "train"
        meta = {"fold": r["fold"], "category": r["category"], "esc10": r.get("esc10", ""),
                "src_file": r.get("src_file", ""), "take": r.get("take", "")}
        records.append(Record(split, Path(r["filename"]).stem, {"audio": root / "audio" / r["filename"]},
                              index[r["target"]], meta))
    return build(records, "esc50", class_names, skip_bad, check,
                 description=f"ESC-50 from {root}, test fold {test_fold}" + (" (ESC-10)" if esc10 else ""))


def _read_meta(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path}: header {reader.fieldnames} lacks {', '.join(missing)}; expected "
                             f"ESC-50's columns filename,fold,target,category,...")
        rows = []
        for n, row in enumerate(reader, start=2):
            try:
                row["fold"], row["target"] = int(row["fold"]), int(row["target"])
            except (TypeError, ValueError):
                raise InputError(f"{path}: line {n}: fold {row['fold']!r} and target {row['target']!r} "
                                 f"must be integers") from None
            rows.append(row)
    return rows
