"""Reading video: MP4/WebM/MKV/MOV/AVI/GIF files (decoded with PyAV), folders of frame images,
or frames in memory.

``load_video`` returns a ``Video``: its frame count and frame rate, read from the container
without decoding; frames are decoded only when the transform asks for them (``Video.read``), a
few per clip, so a long video never sits in memory. Timing follows the frame index at the
average frame rate (as decord, ImageBind's decoder, does): frame i is at i / fps seconds.
Imports numpy only at module level (PyAV and Pillow inside the functions).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmbind.plugin.specs import InputError
from mmbind_plugins.image.io import IMAGE_EXTENSIONS, describe, is_tensor, load_rgb, to_uint8

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v", ".gif")
FRAME_EXTENSIONS = tuple(e for e in IMAGE_EXTENSIONS if e != ".npy")
DEFAULT_FPS = 30.0  # frames in memory or in a folder carry no rate: this one is assumed
FPS_FILE = "fps.txt"  # a frame folder may hold its rate here
EXPECTED = (f"a video file ({', '.join(VIDEO_EXTENSIONS)}), a folder of frame images, frames (T, H, W, 3) "
            f"or a (frames, fps) tuple")


@dataclass(frozen=True)
class Video:
    """A video whose frames are read on demand. ``frames`` holds them when they came from memory."""

    name: str
    num_frames: int
    fps: float
    path: Path | None = None
    frame_files: tuple[Path, ...] = ()
    frames: np.ndarray | None = None

    @property
    def duration(self) -> float:
        """Seconds, as num_frames / fps."""
        return self.num_frames / self.fps

    def read(self, indices: Sequence[int]) -> np.ndarray:
        """The frames at ``indices`` (any order, repeats allowed) as (len, H, W, 3) uint8 RGB."""
        indices = [min(max(int(i), 0), self.num_frames - 1) for i in indices]
        if self.frames is not None:
            return self.frames[indices]
        if self.frame_files:
            return np.stack([load_rgb(self.frame_files[i]) for i in indices])
        return _decode(self.path, indices, self.name)


def load_video(x: Any) -> Video:
    """A video file or frame folder path, a (frames, fps) tuple, or frames (T, H, W, 3) /
    (T, H, W) uint8 or float in [0, 1] (a tensor may be (T, 3, H, W)). Raises InputError."""
    if isinstance(x, Video):
        return x
    if isinstance(x, (str, os.PathLike)):
        path = Path(x)
        if path.is_dir():
            return _frame_folder(path)
        return _probe(path)
    if isinstance(x, tuple):
        if len(x) != 2 or not isinstance(x[1], (int, float)) or isinstance(x[1], bool) or not x[1] > 0:
            raise InputError(f"video tuple of length {len(x)}: expected (frames, fps) with fps > 0")
        return _in_memory(x[0], float(x[1]))
    if hasattr(x, "shape"):
        return _in_memory(x, DEFAULT_FPS)
    raise InputError(f"video input of type {type(x).__name__}: expected {EXPECTED}")


def _in_memory(frames: Any, fps: float) -> Video:
    name = describe(frames)
    array = frames.detach().cpu().numpy() if is_tensor(frames) else frames
    if not isinstance(array, np.ndarray):
        raise InputError(f"{name}: expected {EXPECTED}")
    if is_tensor(frames) and array.ndim == 4 and array.shape[1] in (1, 3) and array.shape[-1] not in (1, 3):
        array = np.moveaxis(array, 1, -1)  # tensors are (T, C, H, W) by torchvision's convention
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3) or min(array.shape[:3]) < 1:
        raise InputError(f"{name}: has shape {tuple(array.shape)}; expected {EXPECTED}")
    array = to_uint8(array, name, EXPECTED)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return Video(name, int(array.shape[0]), fps, frames=np.ascontiguousarray(array))


def _frame_folder(path: Path) -> Video:
    files = tuple(sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FRAME_EXTENSIONS))
    if not files:
        raise InputError(f"{path}: folder holds no frame images ({', '.join(FRAME_EXTENSIONS)}); expected {EXPECTED}")
    fps = DEFAULT_FPS
    if (path / FPS_FILE).is_file():
        text = (path / FPS_FILE).read_text().strip()
        try:
            fps = float(text)
        except ValueError:
            fps = -1.0
        if not fps > 0:
            raise InputError(f"{path / FPS_FILE}: {text!r} is not a frame rate; expected a positive number")
    return Video(str(path), len(files), fps, path=path, frame_files=files)


def _open(path: Path):
    import av

    if not path.exists():
        raise InputError(f"{path}: file not found; expected {EXPECTED}")
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise InputError(f"{path}: unsupported file type {path.suffix or '(no extension)'!r}; expected {EXPECTED}")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable video ({error}); expected {EXPECTED}") from error
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: has no video stream; expected {EXPECTED}")
    return container


def _probe(path: Path) -> Video:
    """Frame count and average rate from the container; packets are counted when the container
    does not say (WebM, GIF). Nothing is decoded."""
    import av

    container = _open(path)
    try:
        stream = container.streams.video[0]
        count = int(stream.frames or 0)
        rate = stream.average_rate or stream.guessed_rate
        if not count:
            count = sum(1 for packet in container.demux(stream) if packet.size)
        if not rate and stream.duration and stream.time_base:
            rate = count / float(stream.duration * stream.time_base)
    except av.FFmpegError as error:
        raise InputError(f"{path}: unreadable video stream ({error}); expected {EXPECTED}") from error
    finally:
        container.close()
    if count < 1:
        raise InputError(f"{path}: the video stream holds no frames; expected {EXPECTED}")
    return Video(str(path), count, float(rate) if rate else DEFAULT_FPS, path=path)


def _decode(path: Path, indices: list[int], name: str) -> np.ndarray:
    """Decode from the start, keeping only the wanted frames (streaming: memory holds only
    those). A stream that ends early repeats its last frame for the indices beyond it."""
    import av

    wanted, stop = set(indices), max(indices)
    kept: dict[int, np.ndarray] = {}
    frame = None
    container = _open(path)
    try:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                kept[i] = frame.to_ndarray(format="rgb24")
            if i >= stop:
                break
    except av.FFmpegError as error:
        raise InputError(f"{name}: video decoding failed ({error}); expected a complete, readable file") from error
    finally:
        container.close()
    if frame is None:
        raise InputError(f"{name}: no frame could be decoded; expected a readable video")
    missing = [i for i in indices if i not in kept]
    last = frame.to_ndarray(format="rgb24") if missing else None
    return np.stack([kept.get(i, last) for i in indices])
