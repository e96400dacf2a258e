"""Loading thermal (infrared) frames: 8- or 16-bit greyscale PNG/TIFF/JPEG or arrays -> HxW
float32 in [0, 1], scaled by the dtype. numpy/Pillow only."""
from __future__ import annotations

from typing import Any

import numpy as np

from mmbind.plugin.specs import InputError
from mmbind_plugins.image.io import as_path, check_finite, describe, is_tensor, read_file, to_grey, to_numpy

EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".npy")
EXPECTED = ("a greyscale thermal frame: 8-bit (0-255) or 16-bit (0-65535) PNG/TIFF/JPEG/.npy, "
            "or a float array in [0, 1] (HxW)")


def load_thermal(x: Any) -> np.ndarray:
    """Any thermal input -> HxW float32 in [0, 1]: uint8 / 255, uint16 / 65535, floats must
    already be in [0, 1]. RGB files whose channels are equal (LLVIP's infrared JPEGs) are read
    as grey; colour images are converted with luma weights."""
    path = as_path(x)
    if path is not None:
        array = read_file(path, EXPECTED, EXTENSIONS)
        name = str(path)
    else:
        array = to_numpy(x, EXPECTED)
        name = describe(x)
        if is_tensor(x) and array.ndim == 3 and array.shape[0] in (1, 3):
            array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[2] in (1, 2, 3, 4):
        array = to_grey(array)
    if array.ndim != 2 or min(array.shape) < 2:
        raise InputError(f"{name}: has shape {tuple(array.shape)}; expected {EXPECTED}")
    check_finite(array, name, EXPECTED)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype.kind == "f":
        lo, hi = float(array.min()), float(array.max())
        if not (0.0 <= lo and hi <= 1.0):
            raise InputError(f"{name}: float values range {lo:g}..{hi:g}; expected {EXPECTED} "
                             f"(scale float frames to [0, 1], or pass the sensor's 8/16-bit counts)")
        return array.astype(np.float32)
    if array.dtype.kind in "iu":
        # Other integer types (int32 from Pillow mode "I", int64 arrays) are 16-bit counts: the
        # dtype, not the values, decides the scale, so one sensor's frames all scale alike.
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 65535:
            raise InputError(f"{name}: integer values range {lo}..{hi}; expected {EXPECTED}")
        return array.astype(np.float32) / 65535.0
    raise InputError(f"{name}: unsupported dtype {array.dtype}; expected {EXPECTED}")
