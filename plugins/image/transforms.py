"""Image preprocessing as ImageBind does it, plus the spatial helpers the depth, thermal and
digits plugins share (bicubic short-side resize + center crop; mild train-time geometry).

Train-time augmentation is geometric only: no colour jitter (colour carries meaning in the
digits world, e.g. a red 7) and no flips (a flipped digit is a different or no digit).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from mmbind_plugins.image.io import load_rgb

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
BICUBIC = InterpolationMode.BICUBIC


def check_size(size: Any) -> int:
    """A transform's size option: a positive int; anything else is a ValueError naming the value."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    return size


def resize_center_crop(image: torch.Tensor, size: int, interpolation: InterpolationMode = BICUBIC) -> torch.Tensor:
    """Resize the short side to ``size`` (antialiased) and take the central size x size crop.
    Works on uint8 or float (C, H, W) tensors."""
    image = TF.resize(image, size, interpolation=interpolation, antialias=True)
    return TF.center_crop(image, [size, size])


def pil_resize_center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """``resize_center_crop`` done by torchvision on a PIL image (Pillow's bicubic), as ImageBind
    and OpenCLIP preprocess: HxWx3 uint8 -> size x size x 3 uint8."""
    from PIL import Image

    resized = TF.resize(Image.fromarray(image), size, interpolation=BICUBIC)
    return np.array(TF.center_crop(resized, [size, size]))


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)


class SpatialAugment:
    """Mild geometry for training: a random resized crop (area ``crop_scale``..1, aspect 3/4..4/3)
    followed by a small random affine (rotation up to ``degrees``, shift up to ``translate`` of
    the side). Picklable, so DataLoader workers can use it."""

    def __init__(self, size: int, crop_scale: float = 0.8, degrees: float = 10.0, translate: float = 0.05,
                 interpolation: InterpolationMode = BICUBIC) -> None:
        if not 0.0 < crop_scale <= 1.0:
            raise ValueError(f"crop_scale must be in (0, 1], got {crop_scale!r}")
        if degrees < 0 or not 0.0 <= translate < 0.5:
            raise ValueError(f"degrees must be >= 0 and translate in [0, 0.5), got {degrees!r}, {translate!r}")
        self.ops = v2.Compose([
            v2.RandomResizedCrop(size, scale=(crop_scale, 1.0), ratio=(3 / 4, 4 / 3),
                                 interpolation=interpolation, antialias=True),
            v2.RandomAffine(degrees=degrees, translate=(translate, translate),
                            interpolation=InterpolationMode.BILINEAR),
        ])

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.ops(image)


class ImageTransform:
    """RGB image -> (3, size, size) float32, CLIP-normalised.

    Eval (ImageBind): bicubic short-side resize to ``size``, center crop, /255, CLIP mean/std.
    ``resize_backend="pil"`` resizes and crops with Pillow, as torchvision does on PIL images in
    ImageBind's and OpenCLIP's preprocessing (bit-exact with their tensors; the default tensor
    resize differs from Pillow's by one level in a few pixels).
    Train: the same output through ``SpatialAugment`` instead of resize + center crop.
    """

    def __init__(self, train: bool = False, size: int = 224, crop_scale: float = 0.8, degrees: float = 10.0,
                 translate: float = 0.05, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD,
                 resize_backend: str = "tensor") -> None:
        if resize_backend not in ("tensor", "pil"):
            raise ValueError(f"resize_backend must be 'tensor' or 'pil', got {resize_backend!r}")
        self.train = bool(train)
        self.pil = resize_backend == "pil"
        self.size = check_size(size)
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std need 3 values each (std > 0), got {mean!r}, {std!r}")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.augment = SpatialAugment(self.size, crop_scale, degrees, translate) if self.train else None

    def __call__(self, image: Any) -> torch.Tensor:
        return self.finish(self.precompute(image))

    def precompute(self, image: Any) -> torch.Tensor:
        """The image as a uint8 (3, H, W) tensor (with the Pillow backend at eval: already resized
        and cropped): deterministic, computed once per sample by the trainer."""
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
            image = load_rgb(image)  # raw paths/arrays work too, not only load()'s output
        if self.pil and self.augment is None:
            image = pil_resize_center_crop(image, self.size)
        return _chw(image)

    def finish(self, pixels: torch.Tensor) -> torch.Tensor:
        """Resize and crop (train: the random geometry) and normalise ``precompute``'s output."""
        if self.augment is not None:
            pixels = self.augment(pixels)
        elif not self.pil:
            pixels = resize_center_crop(pixels, self.size)
        return (pixels.float() / 255.0 - self.mean) / self.std
