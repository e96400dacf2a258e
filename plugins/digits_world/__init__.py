"""The digits world dataset: one concept, a digit 0-9, through seven modalities.

image (anchor, real MNIST with coloured strokes), digits (real 8x8 scans), text (phrases in 8
languages), audio (synthetic speech for training, 60 real human recordings held out), and the
simulated imu, depth and thermal views. See docs/digits-world.md. Nothing heavy is imported
here: the factory imports the builders when a recipe asks for the data.
"""
from __future__ import annotations

import mmbind

PLUGIN_API = 1  # the mmbind plugin contract this plugin is written for

MODALITIES = ("image", "digits", "text", "audio", "imu", "depth", "thermal")


# The builder itself, imported when a recipe asks for the data: mmbind.lazy keeps its signature,
# so `[data] options` are checked against the real options and cannot drift from a copy.
load_digits_world = mmbind.lazy("mmbind_plugins.digits_world.dataset:load_digits_world")


@mmbind.hookimpl
def register_datasets(register):
    register(mmbind.DatasetSpec(
        "digits-world", MODALITIES, load_digits_world,
        "a digit 0-9 through seven modalities: real MNIST images (coloured, the anchor), real "
        "8x8 scans, text in 8 languages, synthetic speech with 60 real recordings held out, and "
        "simulated pen IMU, depth and thermal"))
