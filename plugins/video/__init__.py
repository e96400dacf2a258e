"""The video modality: MP4/WebM/MKV/MOV/AVI/GIF files (PyAV) or frame folders -> ImageBind's
clips of 2 frames; a small CPU encoder. ImageBind's vision tower on video is the
``imagebind-video`` encoder (plugins/imagebind).

Only hook implementations live here; numpy/PyAV/torch load inside the functions.
"""
from __future__ import annotations

from typing import Any

import mmbind

PLUGIN_API = 1  # the mmbind plugin contract this plugin is written for

EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v", ".gif")


def load(x: Any):
    """A video file or frame-folder path, frames (T, H, W, 3) or a (frames, fps) tuple -> Video
    (frames are decoded later, only those the clips need)."""
    from mmbind_plugins.video.io import load_video

    return load_video(x)


def transform(train: bool = False, **options: Any):
    """ImageBind's video preprocessing; options: clips (5), clip_seconds (2), frames (2),
    size (224), crops (3), mean, std (CLIP's). See docs/modalities.md."""
    from mmbind_plugins.video.transforms import VideoTransform

    return VideoTransform(train=train, **options)


def collate(items: list):
    from mmbind_plugins.video.transforms import collate_video

    return collate_video(items)


def example_inputs() -> list:
    """Two SIMULATED clips made in memory at 10 fps: a bright square moving right over 3 s, and
    one growing from the centre over 1.5 s."""
    import numpy as np

    moving = np.zeros((30, 48, 64, 3), np.uint8)
    for t in range(30):
        moving[t, 16:32, 2 * t:2 * t + 8] = (230, 60, 20)
    growing = np.zeros((15, 48, 48, 3), np.uint8)
    for t in range(15):
        growing[t, 24 - t:24 + t + 1, 24 - t:24 + t + 1] = (20, 200, 90)
    return [(moving, 10.0), (growing, 10.0)]


def _video_cnn(output_dim: int = 128, frames: int = 2, widths: list[int] | tuple[int, ...] = (16, 32, 64, 128),
               frame_dim: int = 128, dropout: float = 0.1):
    from mmbind_plugins.video.encoders import VideoCNN

    return VideoCNN(frames=frames, widths=tuple(widths), frame_dim=frame_dim, output_dim=output_dim, dropout=dropout)


@mmbind.hookimpl
def register_modalities(register):
    register(mmbind.Modality(
        "video", load, transform, default_encoder="video-cnn-tiny", collate=collate,
        extensions=EXTENSIONS, example_inputs=example_inputs,
        description="video: MP4/WebM/GIF/... or frame folders -> (5 clips x 3 crops, 3, 2 frames, 224, 224) as ImageBind"))


@mmbind.hookimpl
def register_encoders(register):
    register(mmbind.EncoderSpec(
        "video-cnn-tiny", "video", _video_cnn,
        "per-frame strided CNN (~0.1M parameters), frame features joined in time order per clip, clips averaged (CPU)"))
