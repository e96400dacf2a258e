"""manifest: a CSV or JSONL file listing pairs, one column per modality.

Columns named after registered modalities hold the inputs: file paths relative to the
manifest's folder (for text, the text itself unless it ends in .txt). Paths must stay inside that
folder (``confine``, on by default: a manifest cannot point at ``../../secrets``) and may be
absolute only with ``allow_absolute``. Optional columns: label
(a class name or integer), split (train/val/test), key or id (the pairing key; default the row
number). Other columns go into each sample's meta. An empty cell means the row lacks that
modality.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

import mmbind
from mmbind.plugin.specs import BindingData, InputError
from mmbind_plugins.datasets.common import Record, build, class_index, split_of

RESERVED = ("label", "split", "key", "id")


def load_manifest(
    path: str | Path,
    modalities: Sequence[str] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    skip_bad: bool = False,
    check: bool = True,
    confine: bool = True,
    allow_absolute: bool = False,
) -> BindingData:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such manifest file (expected a .csv or .jsonl file of pairs)")
    rows = _read_rows(path)
    if not rows:
        raise InputError(f"{path}: the manifest lists no rows")
    columns = list(dict.fromkeys(c for row in rows for c in row))
    registered = set(mmbind.list_modalities())
    if modalities is None:
        chosen = [c for c in columns if c in registered]
    else:
        chosen = list(modalities)
        missing = [m for m in chosen if m not in columns]
        if missing:
            raise InputError(f"{path}: no column for modality {', '.join(missing)}; columns are {columns}")
    if not chosen:
        raise InputError(f"{path}: columns {columns} name no registered modality; expected columns named "
                         f"after modalities ({', '.join(sorted(registered))})")

    label_values = [_cell(row.get("label")) for row in rows]
    classes, label_of = class_index(label_values)
    min_modalities = 2 if len(chosen) >= 2 else 1
    records: list[Record] = []
    keys: set[str] = set()
    for n, (row, label) in enumerate(zip(rows, label_values), start=1):
        key = _cell(row.get("key")) or _cell(row.get("id")) or f"row{n}"
        if key in keys:
            raise InputError(f"{path}: row {n}: key {key!r} appears twice; expected one row per key")
        keys.add(key)
        inputs = {m: _input(path.parent, m, _cell(row.get(m)), confine, allow_absolute, f"{path}: row {n}")
                  for m in chosen if _cell(row.get(m))}
        if len(inputs) < min_modalities:
            raise InputError(f"{path}: row {n} has {len(inputs)} of the modality columns {chosen} filled; "
                             f"expected at least {min_modalities}")
        split = _cell(row.get("split")).lower()
        if "split" in columns and not split:
            raise InputError(f"{path}: row {n} has an empty split; expected train, val or test")
        meta = {c: row[c] for c in columns if c not in chosen and c not in RESERVED and c in row}
        records.append(Record(split, key, inputs, label_of(label), meta))
    if "split" not in columns:
        assigned = split_of([r.key for r in records], [r.label for r in records], test_fraction, seed)
        for record in records:
            record.split = assigned[record.key]
    return build(records, "manifest", classes, skip_bad, check, min_modalities,
                 description=f"pairs listed in {path}")


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{path}: line {n} is not valid JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}: line {n} is a JSON {type(row).__name__}; expected an object")
            rows.append({str(k).strip().lower(): v for k, v in row.items()})
        return rows
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as handle:
            return [{(k or "").strip().lower(): v for k, v in row.items()} for row in csv.DictReader(handle)]
    raise InputError(f"{path}: unsupported manifest type {path.suffix!r}; expected .csv or .jsonl")


def _cell(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _input(folder: Path, modality: str, cell: str, confine: bool, allow_absolute: bool, where: str) -> Any:
    if mmbind.get_modality(modality).input_file(cell) is None:
        return cell  # the content itself (a caption), not a file
    path = Path(cell)
    if path.is_absolute():
        if not allow_absolute:
            raise InputError(f"{where}: {modality} path {cell!r} is absolute; expected a path relative to the "
                             f"manifest's folder (pass allow_absolute=true to allow absolute paths)")
        return path
    full = folder / path
    if confine and not full.resolve().is_relative_to(folder.resolve()):
        raise InputError(f"{where}: {modality} path {cell!r} leaves the manifest's folder {folder}; expected a "
                         f"path inside it (pass confine=false to allow)")
    return full
