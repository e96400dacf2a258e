"""What the page shows for an item, decided by what the modality's ``load`` returned, never by the
modality's name: a string is text; a sample with a ``sample_rate`` is sound (a WAV for the player
and an envelope for the waveform); an (H, W, 3) array is a colour image; a few long channels
(C <= 16, T >= 4C) are a multichannel series (IMU); any other 2-D array (depth, thermal, a
scan) is an image through a colour map."""
from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

KINDS = ("words", "picture", "sound", "series")
ENVELOPE_POINTS = 400
SERIES_POINTS = 600


@dataclass
class Preview:
    """An item ready to show: ``kind`` is one of KINDS; ``array`` holds the image (H, W, 3)
    uint8, the mono samples, or the (C, T) series."""

    kind: str
    text: str | None = None
    array: np.ndarray | None = None
    sample_rate: int | None = None

    def summary(self) -> dict[str, Any]:
        """JSON for the page: text inline, an envelope for sound, the channels of a series."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "words":
            out["words"] = self.text
        elif self.kind == "sound":
            out.update(envelope(self.array, self.sample_rate))
        elif self.kind == "series":
            out["series"] = downsample(self.array, SERIES_POINTS).round(4).tolist()
        else:
            out["size"] = list(self.array.shape[:2])
        return out

    def media(self) -> tuple[bytes, str] | None:
        """(bytes, media type) for images (PNG) and sound (16-bit WAV); None for the rest."""
        if self.kind == "picture":
            return png(self.array), "image/png"
        if self.kind == "sound":
            return wav(self.array, self.sample_rate), "audio/wav"
        return None


def describe(raw: Any) -> Preview:
    """The preview of a loaded sample (the result of ``Modality.load``)."""
    if isinstance(raw, str):
        return Preview("words", text=raw)
    rate = getattr(raw, "sample_rate", None)
    if rate is not None:
        samples = np.asarray(getattr(raw, "samples", None), dtype=np.float32).reshape(-1)
        return Preview("sound", array=samples, sample_rate=int(rate))
    array = _array_of(raw)
    if array is None:
        raise ValueError(f"cannot show a {type(raw).__name__} (expected a string, a sound or an array)")
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[2] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # CHW -> HWC
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return Preview("picture", array=_to_uint8(array[:, :, :3]))
    if array.ndim == 1:
        return Preview("series", array=array[None, :].astype(np.float32))
    if array.ndim == 2 and array.shape[0] <= 16 and array.shape[1] >= 4 * array.shape[0]:
        return Preview("series", array=array.astype(np.float32))
    if array.ndim == 2:
        return Preview("picture", array=colour_map(array))
    raise ValueError(f"cannot show an array of shape {array.shape}")


def _array_of(raw: Any) -> np.ndarray | None:
    if hasattr(raw, "detach"):  # a torch tensor, without importing torch
        raw = raw.detach().cpu().numpy()
    if isinstance(raw, np.ndarray):
        return raw
    if dataclasses.is_dataclass(raw):
        values = [getattr(raw, f.name) for f in dataclasses.fields(raw)]
    elif hasattr(raw, "_asdict"):
        values = list(raw._asdict().values())
    else:
        values = list(getattr(raw, "__dict__", {}).values())
    return next((v for v in values if isinstance(v, np.ndarray)), None)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    array = np.nan_to_num(array.astype(np.float32))
    scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0
    return np.clip(array * scale, 0, 255).astype(np.uint8)


def colour_map(array: np.ndarray) -> np.ndarray:
    """A single-channel array -> (H, W, 3) uint8 through viridis, from the 2nd to the 98th
    percentile of its finite non-zero values; zeros (a depth camera's "no reading") and
    non-finite values are black."""
    from matplotlib import colormaps

    values = array.astype(np.float32)
    valid = np.isfinite(values) & (values != 0)
    lo, hi = np.percentile(values[valid], [2, 98]) if valid.any() else (0.0, 1.0)
    scaled = np.clip((np.where(valid, values, lo) - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    lut = (colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    return np.where(valid[..., None], lut[(scaled * 255).astype(np.uint8)], 0).astype(np.uint8)


def png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def wav(samples: np.ndarray, sample_rate: int) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(samples, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def envelope(samples: np.ndarray, sample_rate: int, points: int = ENVELOPE_POINTS) -> dict[str, Any]:
    """Min and max of the samples in ``points`` equal bins: the waveform as a player draws it."""
    n = len(samples)
    bins = max(1, min(points, n))
    edges = np.linspace(0, n, bins + 1).astype(int)
    low = np.minimum.reduceat(samples, edges[:-1]) if n else np.zeros(0)
    high = np.maximum.reduceat(samples, edges[:-1]) if n else np.zeros(0)
    return {"seconds": round(n / sample_rate, 4), "sample_rate": sample_rate,
            "envelope": {"min": low.round(4).tolist(), "max": high.round(4).tolist()}}


def downsample(series: np.ndarray, points: int) -> np.ndarray:
    """(C, T) -> (C, <= points) by taking evenly spaced samples."""
    if series.shape[1] <= points:
        return series
    return series[:, np.linspace(0, series.shape[1] - 1, points).astype(int)]


__all__ = ["KINDS", "Preview", "describe", "colour_map", "png", "wav", "envelope", "downsample"]
