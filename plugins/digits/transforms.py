"""Digit scan -> (1, size, size) float32: resized (antialiased bilinear), then normalised with
MNIST's mean and std. Train adds the same mild geometry as images (no flips)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from mmbind_plugins.digits.io import load_digit
from mmbind_plugins.image.transforms import SpatialAugment, check_size

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


class DigitsTransform:
    """HxW scan in [0, 1] -> (1, size, size) float32, (x - mean) / std."""

    def __init__(self, train: bool = False, size: int = 28, mean: float = MNIST_MEAN, std: float = MNIST_STD,
                 crop_scale: float = 0.85, degrees: float = 10.0, translate: float = 0.08) -> None:
        self.train = bool(train)
        self.size = check_size(size)
        if std <= 0:
            raise ValueError(f"std must be > 0, got {std!r}")
        self.mean, self.std = float(mean), float(std)
        self.augment = (SpatialAugment(self.size, crop_scale, degrees, translate, InterpolationMode.BILINEAR)
                        if self.train else None)

    def __call__(self, scan: Any) -> torch.Tensor:
        return self.finish(self.precompute(scan))

    def precompute(self, scan: Any) -> torch.Tensor:
        """The scan as a (1, H, W) tensor: deterministic, computed once per sample by the trainer."""
        if not (isinstance(scan, np.ndarray) and scan.dtype == np.float32 and scan.ndim == 2):
            scan = load_digit(scan)
        return torch.from_numpy(np.ascontiguousarray(scan))[None]

    def finish(self, pixels: torch.Tensor) -> torch.Tensor:
        """Resize (train: the random geometry) and normalise ``precompute``'s output."""
        if self.augment is not None:
            pixels = self.augment(pixels)
        else:
            # Scans are square; a non-square scan is resized to a square, never cropped (a crop
            # could cut strokes off).
            pixels = TF.resize(pixels, [self.size, self.size], interpolation=InterpolationMode.BILINEAR,
                               antialias=True)
        return (pixels.clamp(0.0, 1.0) - self.mean) / self.std
