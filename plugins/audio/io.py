"""Reading audio: WAV/FLAC files through soundfile, or in-memory waveforms.

``load_audio`` returns a ``Waveform`` (mono float32 samples, sample rate). It is idempotent, so
a transform may call it again on what ``load`` returned. Imports only numpy at module level.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mmbind.plugin.specs import InputError

DEFAULT_SAMPLE_RATE = 16_000  # a bare array carries no rate; ImageBind's rate is assumed
# Plausible audio sample rates. Below 1 kHz nothing audible is left, and a forged header (1 Hz)
# would make resampling to 16 kHz allocate gigabytes; 768 kHz is the highest rate in use.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 768_000
EXTENSIONS = (".wav", ".flac")
EXPECTED = "a mono or stereo WAV or FLAC file, a (waveform, sample_rate) tuple or a 1-D array at 16 kHz"


class Waveform(NamedTuple):
    """Mono float32 samples in [-1, 1] (for files) and their sample rate in Hz."""

    samples: np.ndarray
    sample_rate: int


def load_audio(x: Any) -> Waveform:
    """A path (WAV/FLAC, any rate, stereo is averaged to mono), a ``(waveform, sample_rate)``
    tuple, or a bare 1-D/2-D array or tensor (assumed 16 kHz). Raises InputError naming the file."""
    if isinstance(x, Waveform):
        return _checked(x.samples, x.sample_rate, "waveform")
    if isinstance(x, (str, Path)):
        return _read_file(Path(x))
    if isinstance(x, tuple):
        if len(x) != 2 or isinstance(x[1], (np.ndarray, list, tuple)) or not _is_number(x[1]):
            raise InputError(f"audio tuple of length {len(x)}: expected (waveform, sample_rate)")
        return _checked(_to_mono(_as_array(x[0], "waveform"), "waveform"), x[1], "waveform")
    if hasattr(x, "shape"):
        return _checked(_to_mono(_as_array(x, "array"), "array"), DEFAULT_SAMPLE_RATE, "array")
    raise InputError(f"audio input of type {type(x).__name__}: expected {EXPECTED}")


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _as_array(x: Any, what: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    array = np.asarray(x)
    if array.dtype.kind == "i":  # integer PCM: scale to [-1, 1] like soundfile does
        array = array.astype(np.float32) / float(np.iinfo(array.dtype).max + 1)
    elif array.dtype.kind == "u":
        info = np.iinfo(array.dtype)
        array = (array.astype(np.float32) - (info.max + 1) / 2) / ((info.max + 1) / 2)
    elif array.dtype.kind != "f":
        raise InputError(f"audio {what} of dtype {array.dtype}: expected float or integer samples")
    return array.astype(np.float32, copy=False)


def _to_mono(array: np.ndarray, what: str) -> np.ndarray:
    """(T,) stays; (C, T) or (T, C) with at most 8 channels is averaged over the channels."""
    if array.ndim == 1:
        return array
    if array.ndim == 2:
        if array.shape[0] <= 8 and array.shape[0] <= array.shape[1]:
            return array.mean(axis=0)
        if array.shape[1] <= 8:
            return array.mean(axis=1)
    raise InputError(
        f"audio {what} of shape {tuple(array.shape)}: expected (samples,), (channels, samples) "
        f"or (samples, channels) with at most 8 channels")


def _checked(samples: Any, sample_rate: Any, where: str) -> Waveform:
    array = np.ascontiguousarray(samples, dtype=np.float32)
    rate = float(sample_rate)
    if not rate.is_integer() or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InputError(f"{where}: sample rate {sample_rate!r}: expected a whole number of Hz between "
                         f"{MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE}")
    if array.ndim != 1:
        raise InputError(f"{where}: samples of shape {tuple(array.shape)}: expected mono (samples,)")
    if array.size == 0:
        raise InputError(f"{where}: contains no audio samples; expected at least one")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise InputError(f"{where}: {bad} of {array.size} samples are NaN or infinite; expected finite samples")
    return Waveform(array, int(rate))


def _read_file(path: Path) -> Waveform:
    import soundfile

    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an audio file (expected {EXPECTED}); "
                         f"to embed every file in it, give the directory to `mmbind embed`")
    if not path.is_file():
        raise InputError(f"{path}: no such audio file (expected {EXPECTED})")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (expected a WAV or FLAC file)")
    _check_riff_complete(path)
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise InputError(f"{path}: cannot be read as audio ({error}); expected a WAV or FLAC file") from error
    return _checked(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0], rate, str(path))


def _check_riff_complete(path: Path) -> None:
    """libsndfile reads a truncated WAV silently (fewer frames than its header declares), so the
    chunk sizes are checked here against the bytes actually on disk."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return  # not a plain RIFF/WAVE file: FLAC, RF64, ... (soundfile checks those)
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                # 0 and 0xFFFFFFFF are "unknown length" placeholders of streaming writers.
                if chunk_size not in (0, 0xFFFFFFFF) and offset + 8 + chunk_size > size:
                    raise InputError(
                        f"{path}: truncated WAV file: its header declares {chunk_size} bytes of "
                        f"audio data but only {size - offset - 8} follow; expected a complete file")
                return
            offset += 8 + chunk_size + (chunk_size & 1)  # chunks are padded to even sizes
    raise InputError(f"{path}: WAV file without a 'data' chunk (truncated?); expected a complete file")
