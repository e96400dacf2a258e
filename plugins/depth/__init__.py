"""The depth modality: 16-bit millimetre PNGs, metre .npy arrays or disparity maps -> ImageBind's
normalised disparity, and depth encoders.

Only hook implementations live here; numpy/Pillow/torch load inside the functions.
"""
from __future__ import annotations

from typing import Any

import mmbind

PLUGIN_API = 1  # the mmbind plugin contract this plugin is written for

EXTENSIONS = (".png", ".tif", ".tiff", ".npy")


def load(x: Any):
    """A path or array -> DepthMap(values as stored, kind guessed from the dtype, source name)."""
    from mmbind_plugins.depth.io import load_depth

    return load_depth(x)


# Options: size (224), input ("auto"|"depth_mm"|"depth_m"|"disparity"), fx (518.857901),
# baseline (0.075), min_depth (0.01), max_depth (50), max_disparity (75), mean (0.0418),
# std (0.0295), crop_scale, degrees, translate. See docs/modalities.md.
# mmbind.lazy keeps the class's signature, so a recipe's preprocess options are checked against it.
transform = mmbind.lazy("mmbind_plugins.depth.transforms:DepthTransform")


def example_inputs() -> list:
    """Real metric depth from scikit-image's Middlebury "Motorcycle" stereo ground truth (10x
    down-sampled): once in metres (float32), once in millimetres (uint16, as a 16-bit PNG holds)."""
    import numpy as np

    from mmbind_plugins.depth.io import motorcycle_depth_m

    metres = motorcycle_depth_m(step=10)
    return [metres, np.round(metres * 1000).astype(np.uint16)]


def depth_cnn_tiny(output_dim: int = 128, widths: tuple[int, ...] | list[int] = (16, 32, 64, 128)):
    """Strided 4-stage CNN on the 1-channel disparity, ~0.1M parameters."""
    from mmbind.nn import ConvNet

    return ConvNet(1, tuple(widths), output_dim)


def depth_vit_base(**options: Any):
    """ImageBind's depth tower shape: ViT 384-d, 12 blocks, 8 heads, 16x16 patches, 1 channel
    -> 1024, random init. Options override (img_size, depth, grad_checkpointing, ...)."""
    from mmbind.nn import vit_encoder

    config = dict(img_size=224, patch_size=16, in_chans=1, embed_dim=384, depth=12, num_heads=8, output_dim=1024)
    config.update(options)
    return vit_encoder(**config)


@mmbind.hookimpl
def register_modalities(register):
    register(mmbind.Modality(
        "depth", load, transform, default_encoder="depth-cnn-tiny",
        extensions=EXTENSIONS, example_inputs=example_inputs,
        description="depth maps (16-bit mm PNG, metre .npy, or disparity) -> (1, 224, 224) normalised disparity"))


@mmbind.hookimpl
def register_encoders(register):
    E = mmbind.EncoderSpec
    register(E("depth-cnn-tiny", "depth", depth_cnn_tiny,
               "strided 4-stage CNN, ~0.1M parameters, 128-d, random init (CPU)"))
    register(E("depth-vit-base", "depth", depth_vit_base,
               "ImageBind's depth ViT shape (384-d, 12 blocks, 8 heads) -> 1024, random init; grad_checkpointing option"))
