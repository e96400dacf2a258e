"""Loading depth maps: 16-bit PNG/TIFF in millimetres, .npy in metres, and disparity maps.

A loaded map keeps its values as stored plus a guess of what they are (``kind``), inferred from
the dtype; the depth transform's ``input`` option overrides the guess. numpy/Pillow only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmbind.plugin.specs import InputError
from mmbind_plugins.image.io import as_path, check_finite, describe, is_tensor, read_file, to_numpy

EXTENSIONS = (".png", ".tif", ".tiff", ".npy")
KINDS = ("depth_mm", "depth_m", "disparity")
EXPECTED = ("a single-channel depth map: 16-bit PNG/TIFF in millimetres, .npy/float array in metres, "
            "or a disparity map (HxW)")

# Middlebury 2014 "Motorcycle" as shipped (4x down-sampled) by scikit-image: stereo_motorcycle().
MOTORCYCLE_FOCAL_PX = 994.978
MOTORCYCLE_DOFFS_PX = 31.086
MOTORCYCLE_BASELINE_M = 0.193001


@dataclass(frozen=True)
class DepthMap:
    """A depth or disparity map as stored: ``values`` (HxW), ``kind`` one of KINDS or "unknown"
    (8-bit input: the transform needs ``input=``), ``source`` names it in error messages."""

    values: np.ndarray
    kind: str
    source: str


def infer_kind(array: np.ndarray) -> str:
    """uint16 and other integers: millimetres (Kinect/RealSense PNGs); floats: metres; uint8:
    unknown (8-bit "depth" images are usually visualisations, scale unknown)."""
    if array.dtype == np.uint8:
        return "unknown"
    if array.dtype.kind in "iu":
        return "depth_mm"
    return "depth_m"


def load_depth(x: Any) -> DepthMap:
    """Any depth input -> DepthMap. NaN, wrong shape or a non-image file is an InputError."""
    if isinstance(x, DepthMap):
        return x
    path = as_path(x)
    if path is not None:
        array = read_file(path, EXPECTED, EXTENSIONS)
        name = str(path)
    else:
        array = to_numpy(x, EXPECTED)
        name = describe(x)
        if is_tensor(x) and array.ndim == 3 and array.shape[0] == 1:
            array = array[0]  # (1, H, W) tensor
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2:
        hint = " (a colour image? depth must be one channel, not a colourised rendering)" if array.ndim == 3 else ""
        raise InputError(f"{name}: has shape {tuple(array.shape)}{hint}; expected {EXPECTED}")
    if min(array.shape) < 2:
        raise InputError(f"{name}: has shape {tuple(array.shape)}, too small; expected {EXPECTED}")
    if array.dtype.kind not in "iuf":
        raise InputError(f"{name}: unsupported dtype {array.dtype}; expected {EXPECTED}")
    check_finite(array, name, EXPECTED)
    return DepthMap(array, infer_kind(array), name)


def motorcycle_depth_m(step: int = 1) -> np.ndarray:
    """Real metric depth (metres, float32) from scikit-image's Middlebury "Motorcycle" ground-truth
    disparity: depth = baseline * f / (disparity + doffs). Pixels without ground truth
    (inf/NaN disparity) get 0, the usual "no reading" value of depth sensors."""
    from skimage.data import stereo_motorcycle

    disparity = stereo_motorcycle()[2][::step, ::step].astype(np.float64)
    valid = np.isfinite(disparity)
    depth = np.zeros_like(disparity)
    depth[valid] = MOTORCYCLE_BASELINE_M * MOTORCYCLE_FOCAL_PX / (disparity[valid] + MOTORCYCLE_DOFFS_PX)
    return depth.astype(np.float32)
