"""The digits modality: greyscale handwritten digit scans (28x28 MNIST style, 8x8 scikit-learn
style), and the small CNN of the classic MNIST contrastive tutorial (also as an RGB image anchor).

Only hook implementations live here; numpy/torch load inside the functions.
"""
from __future__ import annotations

from typing import Any

import mmbind

PLUGIN_API = 1  # the mmbind plugin contract this plugin is written for

EXTENSIONS = (".npy", ".png", ".jpg", ".jpeg", ".bmp")


def load(x: Any):
    """A .npy/.png path, an HxW array (or a flat 64/784 row) -> HxW float32 in [0, 1]."""
    from mmbind_plugins.digits.io import load_digit

    return load_digit(x)


# Options: size (28), mean (0.1307), std (0.3081), crop_scale, degrees, translate.
# mmbind.lazy keeps the class's signature, so a recipe's preprocess options are checked against it.
transform = mmbind.lazy("mmbind_plugins.digits.transforms:DigitsTransform")


def example_inputs() -> list:
    """Two real scans: the first 8x8 scikit-learn digit (0-16 values) and the same scan as a
    28x28 uint8 image (values 0-255)."""
    import numpy as np
    from sklearn.datasets import load_digits

    scans = load_digits().images[:2]
    big = np.kron(scans[1], np.ones((3, 3)))  # 24x24, padded to 28x28 like MNIST's margin
    return [scans[0].copy(), np.pad(np.round(big * 255 / 16), 2).astype(np.uint8)]


def digits_cnn(in_channels: int = 1, width: int = 32, output_dim: int = 128, dropout: float = 0.25,
               grid: int = 12, padding: int = 0):
    """The MNIST contrastive tutorial's embedding net: conv 32 3x3, conv 64 3x3, 2x2 max-pool,
    dropout, dense 128 (ReLU). in_channels=3 makes it an RGB image encoder."""
    from mmbind.nn import SmallCNN

    return SmallCNN(in_channels=in_channels, width=width, output_dim=output_dim, grid=grid,
                    dropout=dropout, padding=padding)


def image_digits_cnn(in_channels: int = 3, **options: Any):
    """digits_cnn on RGB images (the digits world's image anchor)."""
    return digits_cnn(in_channels=in_channels, **options)


def digits_vit_tiny(**options: Any):
    """ViT-Ti shape (192-d, 12 blocks, 3 heads) on 4x4 patches of a 28x28 scan, random init."""
    from mmbind.nn import vit_encoder

    config = dict(img_size=28, patch_size=4, in_chans=1, embed_dim=192, depth=12, num_heads=3, output_dim=192)
    config.update(options)
    return vit_encoder(**config)


@mmbind.hookimpl
def register_modalities(register):
    register(mmbind.Modality(
        "digits", load, transform, default_encoder="digits-cnn",
        extensions=EXTENSIONS, example_inputs=example_inputs,
        description="greyscale digit scans (28x28 0-255 or 8x8 0-16) -> (1, 28, 28), MNIST mean/std"))


@mmbind.hookimpl
def register_encoders(register):
    E = mmbind.EncoderSpec
    register(E("digits-cnn", "digits", digits_cnn,
               "MNIST contrastive tutorial CNN: conv 32/64 3x3 + max-pool + dropout + dense 128, ~1.2M parameters"))
    register(E("digits-vit-tiny", "digits", digits_vit_tiny,
               "ViT-Ti (192-d, 12 blocks) on 4x4 patches of 28x28 scans, random init; grad_checkpointing option"))
    register(E("image-digits-cnn", "image", image_digits_cnn,
               "the digits-cnn network on RGB images (in_channels=3), 128-d: the digits world's image anchor"))
