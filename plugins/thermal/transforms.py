"""Thermal frame -> (1, size, size) float32 in [0, 1]: bicubic short-side resize, center crop,
no normalisation (REFERENCE.md: a community check found none closer to ImageBind's numbers)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmbind_plugins.image.transforms import SpatialAugment, check_size, resize_center_crop
from mmbind_plugins.thermal.io import load_thermal


class ThermalTransform:
    """HxW frame in [0, 1] -> (1, size, size); train uses mild random geometry instead of the
    center crop (no flips, no intensity changes: intensity is temperature)."""

    def __init__(self, train: bool = False, size: int = 224, crop_scale: float = 0.8, degrees: float = 10.0,
                 translate: float = 0.05) -> None:
        self.train = bool(train)
        self.size = check_size(size)
        self.augment = SpatialAugment(self.size, crop_scale, degrees, translate) if self.train else None

    def __call__(self, frame: Any) -> torch.Tensor:
        return self.finish(self.precompute(frame))

    def precompute(self, frame: Any) -> torch.Tensor:
        """The frame as a (1, H, W) tensor: deterministic, computed once per sample by the trainer."""
        if not (isinstance(frame, np.ndarray) and frame.dtype == np.float32 and frame.ndim == 2):
            frame = load_thermal(frame)
        return torch.from_numpy(np.ascontiguousarray(frame))[None]

    def finish(self, pixels: torch.Tensor) -> torch.Tensor:
        """Resize and crop (train: the random geometry) ``precompute``'s output."""
        pixels = self.augment(pixels) if self.augment is not None else resize_center_crop(pixels, self.size)
        return pixels.clamp(0.0, 1.0)  # bicubic overshoot is not a temperature
