"""The audio modality: WAV/FLAC or waveforms -> ImageBind's log-mel clips; CNN and ViT encoders.

Only hook implementations live here; numpy/soundfile/torch/torchaudio load inside the functions.
"""
from __future__ import annotations

from typing import Any

import mmbind

PLUGIN_API = 1  # the mmbind plugin contract this plugin is written for

EXTENSIONS = (".wav", ".flac")


def load(x: Any):
    """A WAV/FLAC path, a ``(waveform, sample_rate)`` tuple, or a bare array/tensor (16 kHz)."""
    from mmbind_plugins.audio.io import load_audio

    return load_audio(x)


# ImageBind's audio preprocessing; options: clips, clip_seconds, mel_bins, target_frames,
# sample_rate, log_floor, rms_db, center ("clip" or "imagebind") and the augmentation strengths (see docs/modalities-sensors.md).
# mmbind.lazy keeps the class's signature, so a recipe's preprocess options are checked against it.
transform = mmbind.lazy("mmbind_plugins.audio.features:AudioTransform")


def collate(items: list):
    from mmbind_plugins.audio.features import collate_audio

    return collate_audio(items)


def example_inputs() -> list:
    """Two short 16 kHz test signals: a 440 Hz tone and a chirp (generated, not recorded)."""
    import numpy as np

    t = np.arange(16_000, dtype=np.float32) / 16_000
    return [(0.3 * np.sin(2 * np.pi * 440 * t), 16_000),
            (0.3 * np.sin(2 * np.pi * (200 + 1800 * t) * t), 16_000)]


def _cnn(widths: tuple[int, ...]):
    def factory(output_dim: int = 256, dropout: float = 0.1, widths: list[int] | tuple[int, ...] = widths,
                convs: int = 1):
        from mmbind_plugins.audio.encoders import audio_cnn

        return audio_cnn(tuple(widths), output_dim=output_dim, dropout=dropout, convs=convs)

    return factory


def _vit_base(**options: Any):
    from mmbind_plugins.audio.encoders import audio_vit

    return audio_vit(**options)


@mmbind.hookimpl
def register_modalities(register):
    register(mmbind.Modality(
        "audio", load, transform, default_encoder="audio-cnn-tiny", collate=collate,
        extensions=EXTENSIONS, example_inputs=example_inputs,
        description="sound: WAV/FLAC or waveforms -> (3 clips, 1, 128 mel, 204 frames) as ImageBind"))


@mmbind.hookimpl
def register_encoders(register):
    register(mmbind.EncoderSpec(
        "audio-cnn-tiny", "audio", _cnn((16, 32, 64, 96)),
        "~100k-parameter 2-D CNN on the log-mel clips, clip features averaged (CPU-friendly); "
        "convs=2: two 3x3 convs per stage, ~235k"))
    register(mmbind.EncoderSpec(
        "audio-cnn-small", "audio", _cnn((32, 64, 128, 256)),
        "~0.45M-parameter 2-D CNN on the log-mel clips, clip features averaged"))
    register(mmbind.EncoderSpec(
        "audio-vit-base", "audio", _vit_base,
        "ImageBind-like ViT-B (768-d, 12 blocks) on 16x16 stride-10 log-mel patches, random init"))
