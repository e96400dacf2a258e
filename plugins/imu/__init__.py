"""The IMU modality: accelerometer xyz + gyroscope xyz (6 x T) -> ImageBind's 6 x 2000 input.

Only hook implementations live here; numpy/torch load inside the functions.
"""
from __future__ import annotations

from typing import Any

import mmbind

PLUGIN_API = 1  # the mmbind plugin contract this plugin is written for

EXTENSIONS = (".csv", ".npy")


def load(x: Any):
    """A .csv (time along rows) or .npy path, or an array/tensor of shape (6, T) or (T, 6)."""
    from mmbind_plugins.imu.io import load_imu

    return load_imu(x)


# Options: length (2000), resize ("resample" | "pad"), normalize ("none" | "channel" |
# "sensor") and the augmentation strengths (see docs/modalities-sensors.md).
# mmbind.lazy keeps the class's signature, so a recipe's preprocess options are checked against it.
transform = mmbind.lazy("mmbind_plugins.imu.features:ImuTransform")


def collate(items: list):
    from mmbind_plugins.imu.features import collate_imu

    return collate_imu(items)


def example_inputs() -> list:
    """Two generated 6 x 200 recordings (a still device under gravity, a slow rotation)."""
    import numpy as np

    t = np.linspace(0, 2, 200, dtype=np.float32)
    still = np.zeros((6, 200), np.float32)
    still[2] = 9.81
    turning = np.stack([9.81 * np.sin(t), np.zeros_like(t), 9.81 * np.cos(t),
                        np.zeros_like(t), np.full_like(t, 0.5), np.zeros_like(t)])
    return [still, turning]


def _cnn(output_dim: int = 256, dropout: float = 0.1, widths: list[int] | tuple[int, ...] = (32, 64, 128, 128),
         kernels: list[int] | tuple[int, ...] = (7, 5, 5, 3)):
    from mmbind_plugins.imu.encoders import ImuCNN

    return ImuCNN(tuple(widths), tuple(kernels), output_dim=output_dim, dropout=dropout)


def _vit_base(**options: Any):
    from mmbind_plugins.imu.encoders import ImuTransformer

    return ImuTransformer(**options)


@mmbind.hookimpl
def register_modalities(register):
    register(mmbind.Modality(
        "imu", load, transform, default_encoder="imu-cnn-tiny", collate=collate,
        extensions=EXTENSIONS, example_inputs=example_inputs,
        description="accelerometer xyz + gyroscope xyz, 6 x T -> 6 x 2000 as ImageBind"))


@mmbind.hookimpl
def register_encoders(register):
    register(mmbind.EncoderSpec(
        "imu-cnn-tiny", "imu", _cnn,
        "~0.14M-parameter 1-D CNN over time (CPU-friendly)"))
    register(mmbind.EncoderSpec(
        "imu-vit-base", "imu", _vit_base,
        "ImageBind-like transformer: windows of 8 samples (48 values) -> tokens, 512-d, 6 blocks, random init"))
