"""Loading handwritten digit scans: 28x28 MNIST style (0-255) and 8x8 scikit-learn style (0-16).

numpy and Pillow only (no torch at import).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mmbind.plugin.specs import InputError
from mmbind_plugins.image.io import as_path, check_finite, describe, is_tensor, read_file, to_grey, to_numpy

EXTENSIONS = (".npy", ".png", ".jpg", ".jpeg", ".bmp")
EXPECTED = ("a greyscale digit scan: 28x28 MNIST-style values 0-255, 8x8 scikit-learn-style values 0-16, "
            "or floats in [0, 1] (.npy/.png file, HxW array, or a flat 64/784 vector)")
FLAT_SIDES = {64: 8, 784: 28}  # scikit-learn's digits.data rows and flattened MNIST rows


def load_digit(x: Any) -> np.ndarray:
    """Any digit input -> HxW float32 array in [0, 1] (ink bright on dark, as both sources store it).

    Value scale, in order: uint8 -> /255; uint16 -> /65535; floats with max <= 1 -> as is;
    an 8x8 scan with max <= 16 -> /16 (scikit-learn); other values with max <= 255 -> /255.
    """
    path = as_path(x)
    if path is not None:
        array = read_file(path, EXPECTED, EXTENSIONS)
        name = str(path)
    else:
        array = to_numpy(x, EXPECTED)
        name = describe(x)
        if is_tensor(x) and array.ndim == 3 and array.shape[0] in (1, 3):
            array = np.moveaxis(array, 0, -1)  # CHW tensor -> HWC
    if array.ndim == 1 and array.shape[0] in FLAT_SIDES:
        side = FLAT_SIDES[array.shape[0]]
        array = array.reshape(side, side)
    if array.ndim == 3 and array.shape[2] in (1, 2, 3, 4):
        array = to_grey(array)
    if array.ndim != 2 or min(array.shape) < 2:
        raise InputError(f"{name}: has shape {tuple(array.shape)}; expected {EXPECTED}")
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if array.dtype.kind not in "iuf":
        raise InputError(f"{name}: unsupported dtype {array.dtype}; expected {EXPECTED}")
    check_finite(array, name, EXPECTED)
    values = array.astype(np.float64)
    lo, hi = float(values.min()), float(values.max())
    if not np.isfinite(values).all() or lo < 0:
        raise InputError(f"{name}: values range {lo:g}..{hi:g}; expected {EXPECTED} (no negative or infinite values)")
    if array.dtype == np.uint8:
        scale = 255.0
    elif array.dtype == np.uint16:
        scale = 65535.0
    elif array.dtype.kind == "f" and hi <= 1.0:
        scale = 1.0
    elif array.shape == (8, 8) and hi <= 16.0:
        scale = 16.0
    elif hi <= 255.0:
        scale = 255.0
    else:
        raise InputError(f"{name}: values range {lo:g}..{hi:g}; expected {EXPECTED}")
    return (values / scale).astype(np.float32)
