"""ImageBind's towers as mmbind encoders, and ``mmbind import imagebind`` (its checkpoint -> a
binder folder). mmbind's own modules, written from ImageBind's architecture; no code of
ImageBind's is used. See docs/imagebind.md.

Only hook implementations live here; torch, timm and open_clip load inside the functions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import mmbind

PLUGIN_API = 1  # the mmbind plugin contract this plugin is written for

MODALITIES = ("vision", "text", "audio", "depth", "thermal", "imu")


def import_imagebind(checkpoint: str | Path, out: str | Path, modalities: Iterable[str] = MODALITIES,
                     num_heads: Mapping[str, int] | None = None, **options: Any) -> Path:
    """Turn ImageBind's checkpoint (e.g. imagebind_huge.pth) into the binder folder ``out``
    with the towers of ``modalities`` (vision is always the anchor). Reads only those towers'
    tensors, memory-mapped. ``Binder.from_pretrained(out)`` then loads it."""
    from mmbind_plugins.imagebind.convert import import_imagebind as run

    return run(checkpoint, out, modalities=modalities, num_heads=num_heads, **options)


_TOWERS = [
    ("vision", "image", "images (B, 3, 224, 224); huge: ViT-H/14, 1280-d, 32 blocks"),
    ("video", "video", "video (B, clips, 3, 2, 224, 224): the vision tower with its temporal kernel, clips averaged"),
    ("text", "text", "texts, OpenCLIP's BPE tokenizer (77 tokens); huge: 1024-d, 24 causal blocks"),
    ("audio", "audio", "log-mel clips (B, 3, 1, 128, 204), clips averaged; ViT-B on 16x16 patches, stride 10"),
    ("depth", "depth", "disparity (B, 1, 224, 224); 384-d, 12 blocks"),
    ("thermal", "thermal", "thermal frames (B, 1, 224, 224); 768-d, 12 blocks"),
    ("imu", "imu", "IMU (B, 6, 2000) in 250 windows of 8 samples; 512-d, 6 blocks"),
]


@mmbind.hookimpl
def register_encoders(register):
    for name, modality, what in _TOWERS:
        register(mmbind.EncoderSpec(
            f"imagebind-{name}", modality, mmbind.lazy(f"mmbind_plugins.imagebind.towers:imagebind_{name}"),
            f"ImageBind's {name} tower (stem, trunk, head -> 1024) on {what}; random init, "
            f"weights from `mmbind import imagebind`"))


@mmbind.hookimpl
def register_commands(cli):
    from mmbind_plugins.imagebind.command import register

    register(cli)
