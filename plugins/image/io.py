"""Reading pixel arrays from files, numpy arrays and torch tensors, with InputErrors that name the
file (or the array) and what was expected. Used by the image, digits, depth and thermal plugins.

numpy and Pillow only: nothing here imports torch (a tensor input is recognised by its type's
module and converted with its own ``.numpy()``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mmbind.plugin.specs import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def is_tensor(x: Any) -> bool:
    """A torch tensor, recognised without importing torch."""
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def as_path(x: Any) -> Path | None:
    """The path if ``x`` names a file (str or os.PathLike), else None."""
    if isinstance(x, (str, os.PathLike)):
        return Path(x)
    return None


def describe(x: Any) -> str:
    """How an input is named in error messages: the file, or the array's shape and dtype."""
    path = as_path(x)
    if path is not None:
        return str(path)
    shape = getattr(x, "shape", None)
    if shape is not None:
        kind = "tensor" if is_tensor(x) else "array"
        return f"{kind} of shape {tuple(shape)} and dtype {getattr(x, 'dtype', '?')}"
    return f"value of type {type(x).__name__}"


def to_numpy(x: Any, expected: str) -> np.ndarray:
    """A numpy array from an array or tensor; anything else is an InputError."""
    if is_tensor(x):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    raise InputError(f"{describe(x)}: expected {expected}, or a path to such a file")


def read_file(path: Path, expected: str, extensions: tuple[str, ...]) -> np.ndarray:
    """Read an image file (Pillow) or a .npy array, keeping its bit depth.

    Pillow modes map to dtypes: "L" uint8, "I;16" uint16, "I" int32, "F" float32, "RGB(A)"
    uint8 HxWxC; palette images are expanded to RGB(A). ``.npy`` never unpickles objects.
    """
    if not path.exists():
        raise InputError(f"{path}: file not found; expected {expected}")
    if not path.is_file():
        raise InputError(f"{path}: is not a file; expected {expected}")
    ext = path.suffix.lower()
    if ext not in extensions:
        raise InputError(
            f"{path}: unsupported file type {ext or '(no extension)'!r}; expected {expected} "
            f"with one of the extensions {', '.join(extensions)}")
    if ext == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as error:  # object arrays need pickle, which we refuse
            raise InputError(f"{path}: not a plain numeric .npy array ({error}); expected {expected}") from error
        except (OSError, EOFError) as error:
            raise InputError(f"{path}: unreadable .npy file ({error}); expected {expected}") from error
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()  # decode now, so truncated files fail here and name the file
            if image.mode in ("P", "PA"):
                image = image.convert("RGBA" if "transparency" in image.info or image.mode == "PA" else "RGB")
            elif image.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
                image = image.convert("L" if image.mode == "1" else "RGB")
            array = np.array(image)
    except Image.DecompressionBombError as error:  # a few KB that decode to gigabytes
        raise InputError(f"{path}: refused, its header claims more pixels than Pillow's limit of "
                         f"{Image.MAX_IMAGE_PIXELS} ({error}); expected {expected}") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{path}: not a readable image ({error}); expected {expected}") from error
    return array


def check_finite(array: np.ndarray, name: str, expected: str) -> None:
    """NaN (and, for integer-free inputs, -inf) is never a valid pixel."""
    if array.dtype.kind == "f":
        nan = np.isnan(array)
        if nan.any():
            raise InputError(
                f"{name}: contains {int(nan.sum())} NaN value(s) (first at index "
                f"{tuple(int(i) for i in np.argwhere(nan)[0])}); expected {expected}")


def load_rgb(x: Any) -> np.ndarray:
    """Any image input -> HxWx3 uint8 RGB array.

    Accepts PNG/JPEG/BMP/WebP paths; HxW, HxWx1, HxWx3 or HxWx4 numpy arrays; and CHW
    (or HWC) tensors. uint8 is used as is; floats must lie in [0, 1]; other integer types must
    lie in 0..255; 16-bit greyscale files are scaled by 1/257. Alpha is dropped, grey repeated.
    """
    expected = "an RGB or greyscale image (PNG/JPEG file, HxWx3 uint8 array or CHW tensor)"
    path = as_path(x)
    if path is not None:
        array = read_file(path, expected, IMAGE_EXTENSIONS)
        name = str(path)
        if array.dtype == np.uint16 or array.dtype == np.int32:
            array = np.round(array.astype(np.float64) / 257.0).clip(0, 255).astype(np.uint8)
    else:
        tensor = is_tensor(x)
        array = to_numpy(x, expected)
        name = describe(x)
        if tensor and array.ndim == 3 and array.shape[0] in (1, 3, 4):
            array = np.moveaxis(array, 0, -1)  # tensors are CHW by convention -> HWC
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise InputError(f"{name}: has shape {tuple(array.shape)}; expected {expected} (HxW, HxWx1, HxWx3 or HxWx4)")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise InputError(f"{name}: is empty (shape {tuple(array.shape)}); expected {expected}")
    array = to_uint8(array, name, expected)
    if array.shape[2] == 4:
        array = array[:, :, :3]
    elif array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array)


def to_uint8(array: np.ndarray, name: str, expected: str) -> np.ndarray:
    """uint8 as is, bool -> 0/255, floats in [0, 1] -> 0..255, other integers must be 0..255."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype.kind == "f":
        check_finite(array, name, expected)
        if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
            raise InputError(
                f"{name}: float values range {float(np.nanmin(array)):g}..{float(np.nanmax(array)):g}; "
                f"expected {expected} with floats in [0, 1]")
        return np.round(array * 255.0).astype(np.uint8)
    if array.dtype.kind in "iu":
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 255:
            raise InputError(f"{name}: integer values range {lo}..{hi}; expected {expected} with values 0..255")
        return array.astype(np.uint8)
    raise InputError(f"{name}: unsupported dtype {array.dtype}; expected {expected}")


def to_grey(array: np.ndarray) -> np.ndarray:
    """HxW from HxW, HxWx1, HxWx2 (grey+alpha), HxWx3 or HxWx4: equal channels are taken as is,
    colour is converted with the ITU-R 601 luma weights (as Pillow's "L")."""
    if array.ndim == 2:
        return array
    if array.shape[2] in (1, 2):
        return array[:, :, 0]
    rgb = array[:, :, :3]
    if (rgb[:, :, 0] == rgb[:, :, 1]).all() and (rgb[:, :, 1] == rgb[:, :, 2]).all():
        return rgb[:, :, 0]  # greyscale stored as RGB (LLVIP infrared JPEGs): keep the exact values
    grey = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if array.dtype.kind in "iu":
        return np.round(grey).astype(array.dtype)
    return grey.astype(array.dtype)
