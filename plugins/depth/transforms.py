"""Depth -> ImageBind/Omnivore disparity, (1, size, size) float32.

1. depth in metres (mm / 1000), clipped to [min_depth, max_depth] = [0.01, 50] m;
2. disparity = baseline * fx / depth (Kinect: baseline 0.075 m, NYU-v2 fx 518.857901 px);
   a ``disparity`` input skips steps 1-2;
3. Omnivore's DepthNorm: clamp to [0.01, max_disparity = 75], divide by 75;
4. bicubic short-side resize to ``size``, center crop (train: mild random geometry instead);
5. (x - 0.0418) / 0.0295, the normalisation published with this pipeline (Omnivore, ViT-Lens).

``detrend=True`` (off by default; for small CPU models) replaces step 5: the least-squares plane
through the valid pixels (depth > 0) is subtracted, the residual divided by its standard deviation,
and pixels with no reading set to 0. What is left is the surface relief, free of the distance and
tilt of the dominant plane and of the no-reading spikes that otherwise sit ~30 standard deviations
above everything else (0 m clips to the nearest depth, so it reads as the largest disparity).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmbind.plugin.specs import InputError
from mmbind_plugins.depth.io import KINDS, DepthMap, load_depth
from mmbind_plugins.image.transforms import SpatialAugment, check_size, resize_center_crop

KINECT_BASELINE_M = 0.075
NYU_FX_PX = 518.857901
DEPTH_MEAN = 0.0418
DEPTH_STD = 0.0295


class DepthTransform:
    """See the module docstring. ``input``: "auto" (from the dtype: integers are millimetres,
    floats metres), "depth_mm", "depth_m" or "disparity"."""

    def __init__(self, train: bool = False, size: int = 224, input: str = "auto", fx: float = NYU_FX_PX,
                 baseline: float = KINECT_BASELINE_M, min_depth: float = 0.01, max_depth: float = 50.0,
                 max_disparity: float = 75.0, mean: float = DEPTH_MEAN, std: float = DEPTH_STD,
                 crop_scale: float = 0.8, degrees: float = 10.0, translate: float = 0.05,
                 detrend: bool = False) -> None:
        if input != "auto" and input not in KINDS:
            raise ValueError(f"depth option input must be 'auto' or one of {KINDS}, got {input!r}")
        if fx <= 0 or baseline <= 0 or not 0 < min_depth < max_depth or max_disparity <= 0 or std <= 0:
            raise ValueError("depth options need fx, baseline, max_disparity, std > 0 and 0 < min_depth < max_depth")
        self.train = bool(train)
        self.size = check_size(size)
        self.input = input
        self.fx, self.baseline = float(fx), float(baseline)
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        self.max_disparity = float(max_disparity)
        self.mean, self.std = float(mean), float(std)
        self.detrend = bool(detrend)
        self.augment = SpatialAugment(self.size, crop_scale, degrees, translate) if self.train else None

    def disparity(self, depth: DepthMap) -> np.ndarray:
        """Steps 1-2: the map as disparity (float64)."""
        kind = depth.kind if self.input == "auto" else self.input
        if kind == "unknown":
            raise InputError(
                f"{depth.source}: 8-bit values ({depth.values.dtype}) have no known depth scale; expected "
                f"16-bit millimetres or float metres, or set the depth option input='depth_mm', 'depth_m' or 'disparity'")
        values = depth.values.astype(np.float64)
        if kind == "disparity":
            return values  # negative (far, e.g. MiDaS) values are clamped by DepthNorm below
        if (values < 0).any():
            raise InputError(f"{depth.source}: has negative depth values (min {values.min():g}); "
                             f"expected depth >= 0 ({kind}, 0 = no reading)")
        metres = values / 1000.0 if kind == "depth_mm" else values
        metres = np.clip(metres, self.min_depth, self.max_depth)  # 0 (no reading) becomes near
        return self.baseline * self.fx / metres

    def __call__(self, depth: Any) -> torch.Tensor:
        return self.finish(self.precompute(depth))

    def precompute(self, depth: Any) -> torch.Tensor:
        """Steps 1-3 (and the relief): deterministic, so the trainer computes them once per sample."""
        depth = load_depth(depth)
        disparity = np.clip(self.disparity(depth), 0.01, self.max_disparity) / self.max_disparity
        if self.detrend:
            disparity = relief(disparity, valid=depth.values > 0)  # 0 is no reading (depth or disparity)
        return torch.from_numpy(disparity.astype(np.float32))[None]

    def finish(self, pixels: torch.Tensor) -> torch.Tensor:
        """Steps 4-5 on ``precompute``'s output: the random geometry in training."""
        pixels = self.augment(pixels) if self.augment is not None else resize_center_crop(pixels, self.size)
        if self.detrend:
            return pixels
        pixels = pixels.clamp(0.01 / self.max_disparity, 1.0)  # DepthNorm's range: bicubic overshoot is not a disparity
        return (pixels - self.mean) / self.std


def relief(disparity: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The disparity minus its least-squares plane over the ``valid`` pixels, divided by the
    residual's standard deviation; invalid pixels are 0. A map with fewer than 3 valid pixels is
    all zeros."""
    out = np.zeros(disparity.shape, dtype=np.float64)
    if valid.sum() < 3:
        return out
    v, u = np.nonzero(valid)
    design = np.stack([u, v, np.ones_like(u)], axis=1).astype(np.float64)
    values = disparity[valid].astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)
    residual = values - design @ coef
    out[valid] = residual / max(float(residual.std()), 1e-12)
    return out
