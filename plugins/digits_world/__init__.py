"""The digits world dataset: one concept, a digit 0-9, through seven modalities.

image (anchor, real MNIST with coloured strokes), digits (real 8x8 scans), text (phrases in 8
languages), audio (synthetic speech for training, 60 real human recordings held out), and the
simulated imu, depth and thermal views. See docs/digits-world.md. Nothing heavy is imported
here: the factory imports the builders when a recipe asks for the data.
"""
from __future__ import annotations

from pathlib import Path

import mmbind

PLUGIN_API = 1  # the mmbind plugin contract this plugin is written for

MODALITIES = ("image", "digits", "text", "audio", "imu", "depth", "thermal")


def load_digits_world(root: str | Path | None = None, seed: int = 0, size: int = 32, *,
                      n_per_class: int | None = None, audio_per_class: int = 350,
                      audio_test_per_class: int = 50, colours_per_image: int = 2,
                      imu_length: int = 256, imu_rate: int = 100, rebuild: bool = False,
                      workers: int | None = None) -> mmbind.BindingData:
    """The digits world with splits "train", "test" and "real" (the 60 real recordings, audio
    only), built once from `seed` and cached under root (default $MMBIND_CACHE or
    ~/.cache/mmbind). n_per_class caps every per-class count for quick small builds. See
    mmbind_plugins.digits_world.dataset.load_digits_world for every option."""
    from mmbind_plugins.digits_world import dataset

    return dataset.load_digits_world(
        root, seed, size, n_per_class=n_per_class, audio_per_class=audio_per_class,
        audio_test_per_class=audio_test_per_class, colours_per_image=colours_per_image,
        imu_length=imu_length, imu_rate=imu_rate, rebuild=rebuild, workers=workers)


@mmbind.hookimpl
def register_datasets(register):
    register(mmbind.DatasetSpec(
        "digits-world", MODALITIES, load_digits_world,
        "a digit 0-9 through seven modalities: real MNIST images (coloured, the anchor), real "
        "8x8 scans, text in 8 languages, synthetic speech with 60 real recordings held out, and "
        "simulated pen IMU, depth and thermal"))
