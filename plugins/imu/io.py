"""Reading IMU recordings: accelerometer xyz + gyroscope xyz as a (6, T) float32 array.

CSV files have time along the rows: either a header naming acc_x, acc_y, acc_z, gyro_x, gyro_y,
gyro_z (other columns such as a timestamp are ignored) or no header and exactly 6 columns.
.npy files and arrays are (6, T) or (T, 6); a (6, 6) array is taken as channels x time.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from mmbind.plugin.specs import InputError

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
EXTENSIONS = (".csv", ".npy")
EXPECTED = ("6 channels (acc_x, acc_y, acc_z, gyro_x, gyro_y, gyro_z) x time: a .csv with time "
            "along the rows, a .npy or an array of shape (6, T) or (T, 6)")


def load_imu(x: Any) -> np.ndarray:
    """A .csv/.npy path, a numpy array or a torch tensor -> (6, T) float32. Idempotent."""
    if isinstance(x, (str, Path)):
        path = Path(x)
        if not path.is_file():
            raise InputError(f"{path}: no such IMU file (expected {EXPECTED})")
        if path.stat().st_size == 0:
            raise InputError(f"{path}: the file is empty (expected {EXPECTED})")
        suffix = path.suffix.lower()
        if suffix == ".npy":
            return _checked(_read_npy(path), str(path))
        if suffix in (".csv", ".txt"):
            return _checked(read_csv(path), str(path))
        raise InputError(f"{path}: unsupported IMU file type {path.suffix!r} (expected .csv or .npy)")
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    if isinstance(x, (np.ndarray, list, tuple)):
        return _checked(np.asarray(x), "IMU array")
    raise InputError(f"IMU input of type {type(x).__name__}: expected {EXPECTED}")


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)  # never unpickle a user file
    except (ValueError, OSError, EOFError) as error:
        raise InputError(f"{path}: cannot be read as a .npy array ({error}); expected {EXPECTED}") from error


def read_csv(path: Path) -> np.ndarray:
    """(6, T) from a CSV with or without the channel-name header."""
    with open(path, newline="") as handle:
        rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    if not rows:
        raise InputError(f"{path}: contains no rows (expected {EXPECTED})")
    columns: list[int] = list(range(len(rows[0])))
    first = [cell.strip() for cell in rows[0]]
    header = not all(_is_float(cell) for cell in first)
    if header:
        names = [cell.lower() for cell in first]
        missing = [c for c in CHANNELS if c not in names]
        if missing:
            raise InputError(f"{path}: header {first} lacks column(s) {', '.join(missing)}; expected a "
                             f"header naming {', '.join(CHANNELS)} or no header and exactly 6 columns")
        columns = [names.index(c) for c in CHANNELS]
        rows = rows[1:]
        if not rows:
            raise InputError(f"{path}: has a header but no samples (expected {EXPECTED})")
    elif len(first) != 6:
        raise InputError(f"{path}: {len(first)} columns without a header; expected exactly 6 "
                         f"({', '.join(CHANNELS)}) or a header naming them")
    values = np.empty((len(rows), 6), dtype=np.float32)
    for r, row in enumerate(rows):
        try:
            values[r] = [float(row[c]) for c in columns]
        except (ValueError, IndexError):
            raise InputError(f"{path}: data row {r + 1} ({','.join(row)!r}) is not 6 numbers in the "
                             f"expected columns ({', '.join(CHANNELS)})") from None
    return values.T


def _is_float(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _checked(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype.kind not in "fiub":
        raise InputError(f"{where}: dtype {array.dtype}; expected numbers ({EXPECTED})")
    if array.ndim != 2 or 6 not in array.shape:
        raise InputError(f"{where}: shape {tuple(array.shape)}; expected {EXPECTED}")
    if array.shape[0] != 6:  # (T, 6): time along the rows
        array = array.T
    if array.shape[1] == 0:
        raise InputError(f"{where}: contains no samples; expected {EXPECTED}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise InputError(f"{where}: {int((~np.isfinite(array)).sum())} values are NaN or infinite "
                         f"(first: channel {CHANNELS[bad[0]]}, sample {bad[1]}); expected finite numbers")
    return array
