"""A reader for the .ts time-series format of sktime/aeon (the UEA/UCR archive files they ship).

After the @-header and @data, each line is one series: dimensions separated by ':', values by
',', '?' for a missing value, and the class label last when @classLabel is true.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mmbind.plugin.specs import InputError


def read_ts(path: str | Path) -> tuple[list[np.ndarray], list[str], list[str]]:
    """-> (series as (dimensions, T) float32 arrays, class label per series, declared classes)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such .ts file")
    series: list[np.ndarray] = []
    labels: list[str] = []
    classes: list[str] = []
    has_labels = False
    in_data = False
    with open(path, encoding="utf-8") as handle:
        for n, line in enumerate(handle, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                tag, _, value = line.partition(" ")
                tag = tag.lower()
                if tag == "@timestamps" and value.strip().lower() == "true":
                    raise InputError(f"{path}: line {n}: time-stamped .ts series are not supported; "
                                     f"expected @timeStamps false")
                if tag == "@classlabel":
                    words = value.split()
                    has_labels = bool(words) and words[0].lower() == "true"
                    classes = words[1:] if has_labels else []
                if tag == "@data":
                    in_data = True
                continue
            parts = line.split(":")
            if has_labels:
                labels.append(parts.pop().strip())
            try:
                dims = [[np.nan if v.strip() == "?" else float(v) for v in part.split(",")] for part in parts]
            except ValueError:
                raise InputError(f"{path}: line {n}: a value is not a number; expected comma-separated "
                                 f"numbers per dimension") from None
            if len({len(d) for d in dims}) != 1:
                raise InputError(f"{path}: line {n}: dimensions of unequal length {[len(d) for d in dims]}")
            series.append(np.asarray(dims, dtype=np.float32))
    if not in_data:
        raise InputError(f"{path}: no @data line; expected a .ts file (sktime/aeon format)")
    if not series:
        raise InputError(f"{path}: no series after @data")
    return series, labels, classes
