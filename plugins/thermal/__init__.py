"""The thermal (infrared) modality: 8/16-bit greyscale frames -> (1, 224, 224) in [0, 1], and
thermal encoders.

Only hook implementations live here; numpy/Pillow/torch load inside the functions.
"""
from __future__ import annotations

from typing import Any

import mmbind

PLUGIN_API = 1  # the mmbind plugin contract this plugin is written for

EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".npy")


def load(x: Any):
    """A path or array -> HxW float32 in [0, 1] (uint8 / 255, uint16 / 65535)."""
    from mmbind_plugins.thermal.io import load_thermal

    return load_thermal(x)


# Options: size (224), crop_scale, degrees, translate (train only). No normalisation.
# mmbind.lazy keeps the class's signature, so a recipe's preprocess options are checked against it.
transform = mmbind.lazy("mmbind_plugins.thermal.transforms:ThermalTransform")


def example_inputs() -> list:
    """Two SIMULATED frames (no real thermal data ships offline): a warm disc on a cool
    background as 8-bit counts, and a vertical temperature gradient as 16-bit counts."""
    import numpy as np

    yy, xx = np.mgrid[0:48, 0:64]
    disc = np.where((yy - 24) ** 2 + (xx - 32) ** 2 < 144, 220, 40).astype(np.uint8)
    gradient = (yy * (60000 // 47)).astype(np.uint16)
    return [disc, gradient]


def thermal_cnn_tiny(output_dim: int = 128, widths: tuple[int, ...] | list[int] = (16, 32, 64, 128)):
    """Strided 4-stage CNN on 1-channel frames, ~0.1M parameters."""
    from mmbind.nn import ConvNet

    return ConvNet(1, tuple(widths), output_dim)


def thermal_vit_base(**options: Any):
    """ImageBind's thermal tower shape: ViT-B 768-d, 12 blocks, 12 heads, 16x16 patches,
    1 channel -> 1024, random init. Options override (img_size, depth, grad_checkpointing, ...)."""
    from mmbind.nn import vit_encoder

    config = dict(img_size=224, patch_size=16, in_chans=1, embed_dim=768, depth=12, num_heads=12, output_dim=1024)
    config.update(options)
    return vit_encoder(**config)


@mmbind.hookimpl
def register_modalities(register):
    register(mmbind.Modality(
        "thermal", load, transform, default_encoder="thermal-cnn-tiny",
        extensions=EXTENSIONS, example_inputs=example_inputs,
        description="thermal/infrared frames (8/16-bit grey) -> (1, 224, 224) in [0, 1], no normalisation"))


@mmbind.hookimpl
def register_encoders(register):
    E = mmbind.EncoderSpec
    register(E("thermal-cnn-tiny", "thermal", thermal_cnn_tiny,
               "strided 4-stage CNN, ~0.1M parameters, 128-d, random init (CPU)"))
    register(E("thermal-vit-base", "thermal", thermal_vit_base,
               "ImageBind's thermal ViT shape (768-d, 12 blocks, 12 heads) -> 1024, random init; grad_checkpointing option"))
