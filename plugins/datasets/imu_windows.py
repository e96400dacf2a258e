"""imu-windows: labelled IMU windows (accelerometer xyz + gyroscope xyz), from any of

- a folder of class folders, root/<class>/*.csv|*.npy, one window per file (optionally inside
  split folders root/train/<class>/..., root/test/<class>/...);
- one long CSV with a window id column, the channel columns acc_x..gyro_z, and optionally a
  label and a split column (rows of a window in time order);
- a .ts file of sktime/aeon (e.g. BasicMotions_TRAIN.ts; its _TEST sibling is read too).
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from mmbind.plugin.specs import BindingData, InputError
from mmbind_plugins.datasets.common import Record, build, class_index, split_of
from mmbind_plugins.datasets.ts_format import read_ts

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
EXTENSIONS = (".csv", ".npy")
SPLIT_FOLDERS = ("train", "val", "test")


def load_imu_windows(
    path: str | Path,
    window_column: str = "window",
    label_column: str = "label",
    split_column: str = "split",
    test_fraction: float = 0.2,
    seed: int = 0,
    skip_bad: bool = False,
    check: bool = True,
) -> BindingData:
    path = Path(path)
    if path.is_dir():
        records, classes = _from_folders(path)
    elif path.suffix.lower() == ".csv" and path.is_file():
        records, classes = _from_long_csv(path, window_column.lower(), label_column.lower(), split_column.lower())
    elif path.suffix.lower() == ".ts" and path.is_file():
        records, classes = _from_ts(path)
    else:
        raise InputError(f"{path}: not a folder, .csv or .ts file; expected class folders of IMU windows, "
                         f"a CSV with a {window_column!r} column, or an sktime/aeon .ts file")
    if not records:
        raise InputError(f"{path}: no IMU windows found")
    if any(not r.split for r in records):
        assigned = split_of([r.key for r in records], [r.label for r in records], test_fraction, seed)
        for record in records:
            record.split = record.split or assigned[record.key]
    return build(records, "imu-windows", classes, skip_bad, check, description=f"IMU windows from {path}")


def _from_folders(root: Path) -> tuple[list[Record], list[str]]:
    split_dirs = {s: root / s for s in SPLIT_FOLDERS if (root / s).is_dir()}
    found = []
    for split, base in (split_dirs or {"": root}).items():
        for class_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for file in sorted(class_dir.iterdir()):
                if file.suffix.lower() in EXTENSIONS and not file.name.startswith("."):
                    found.append((split, class_dir.name, file))
    if not found:
        raise InputError(f"{root}: no class folders with .csv or .npy windows; expected root/<class>/*.csv")
    classes, label_of = class_index(c for _, c, _ in found)
    records = [Record(split, file.relative_to(root).with_suffix("").as_posix(), {"imu": file}, label_of(cls),
                      {"class": cls, "file": file.name}) for split, cls, file in found]
    return records, classes


def _from_long_csv(path: Path, window_col: str, label_col: str, split_col: str) -> tuple[list[Record], list[str]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields = [(f or "").strip().lower() for f in reader.fieldnames or []]
        missing = [c for c in (window_col, *CHANNELS) if c not in fields]
        if missing:
            raise InputError(f"{path}: header {reader.fieldnames} lacks {', '.join(missing)}; expected a "
                             f"{window_col!r} column and the channels {', '.join(CHANNELS)}")
        windows: dict[str, dict] = {}
        for n, row in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            wid = row[window_col]
            if not wid:
                raise InputError(f"{path}: line {n} has an empty {window_col!r}; expected a window id")
            try:
                values = [float(row[c]) for c in CHANNELS]
            except ValueError:
                raise InputError(f"{path}: line {n}: channel values {[row[c] for c in CHANNELS]} are not all "
                                 f"numbers") from None
            window = windows.setdefault(wid, {"rows": [], "label": row.get(label_col, ""),
                                              "split": row.get(split_col, "").lower(), "line": n})
            if row.get(label_col, "") != window["label"]:
                raise InputError(f"{path}: line {n}: window {wid!r} changes label from {window['label']!r} to "
                                 f"{row.get(label_col)!r}; expected one label per window")
            window["rows"].append(values)
    classes, label_of = class_index(w["label"] for w in windows.values())
    records = [Record(w["split"], f"window-{wid}", {"imu": np.asarray(w["rows"], np.float32).T},
                      label_of(w["label"]), {"window": wid, "first_line": w["line"]},
                      where={"imu": f"{path} window {wid!r} (from line {w['line']})"})
               for wid, w in windows.items()]
    return records, classes


def _from_ts(path: Path) -> tuple[list[Record], list[str]]:
    match = re.match(r"(.*)_(train|test)$", path.stem, re.IGNORECASE)
    files = {"": path}
    if match:
        files = {}
        for split in ("train", "test"):
            for candidate in path.parent.glob(f"{match.group(1)}_*.ts"):
                if candidate.stem.lower() == f"{match.group(1)}_{split}".lower():
                    files[split] = candidate
    records: list[Record] = []
    declared: list[str] = []
    loaded = []
    for split, file in files.items():
        series, labels, classes = read_ts(file)
        declared = declared or classes
        loaded.append((split, file, series, labels))
    names = declared or sorted({label for *_, labels in loaded for label in labels})
    index = {name: i for i, name in enumerate(names)}
    for split, file, series, labels in loaded:
        for i, array in enumerate(series):
            label = labels[i] if labels else ""
            if label and label not in index:
                raise InputError(f"{file}: series {i} has class {label!r}, not one of the declared {names}")
            records.append(Record(split, f"{file.stem}-{i:04d}", {"imu": array}, index.get(label, -1),
                                  {"file": file.name, "series": i}, where={"imu": f"{file} series {i}"}))
    return records, names
