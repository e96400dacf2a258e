"""Video model input: ImageBind's clip sampling and frame preprocessing.

Eval (ImageBind): ``clips`` clips of ``clip_seconds`` evenly spaced over the video (the first
starts at 0, the last ends at the end; pytorchvideo's ConstantClipsPerVideoSampler as ImageBind
pins it), the frames of a clip are those with index in [ceil(fps * start), ceil(fps * end)),
and ``frames`` of them are taken evenly (first and last for 2: pytorchvideo's
UniformTemporalSubsample). Frames are scaled to [0, 1], the short side resized to ``size``
(bilinear, as pytorchvideo's ShortSideScale), CLIP-normalised, and ``crops`` square crops taken
(3: left/top, centre, right/bottom, as ImageBind's SpatialCrop; 1: centre).
Output: (clips * crops, 3, frames, size, size) float32; the encoder averages the clips.

Train: each clip starts at a random time and one random square crop is taken per video
(randomness from torch's global generator, which the trainer seeds per batch).
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mmbind_plugins.image.transforms import CLIP_MEAN, CLIP_STD, check_size
from mmbind_plugins.video.io import Video, load_video


def clip_times(duration: float, clips: int, clip_seconds: float) -> list[tuple[Fraction, Fraction]]:
    """(start, end) in seconds of ``clips`` evenly spaced clips; a video shorter than a clip
    gives (0, clip_seconds) every time. Computed from the float duration as pytorchvideo does."""
    length = Fraction(clip_seconds)
    step = Fraction(max(duration - clip_seconds, 0)) / max(clips - 1, 1)
    return [(step * i, step * i + length) for i in range(clips)]


def clip_frame_indices(video: Video, start: float, end: float, frames: int) -> list[int]:
    """``frames`` evenly spaced frame indices of the frames in [start, end) (decord's get_clip,
    then pytorchvideo's UniformTemporalSubsample); an empty range gives its nearest frame."""
    first = math.ceil(video.fps * start)
    stop = min(math.ceil(video.fps * end), video.num_frames)
    count = stop - first
    if count <= 0:
        return [min(first, video.num_frames - 1)] * frames
    return [first + int(i) for i in torch.linspace(0, count - 1, frames).long().tolist()]


def short_side_resize(clip: torch.Tensor, size: int) -> torch.Tensor:
    """(C, T, H, W) float -> short side ``size``, long side floor(long / short * size), bilinear
    without antialiasing (pytorchvideo's ShortSideScale)."""
    height, width = clip.shape[-2:]
    if width < height:
        shape = (int(math.floor(height / width * size)), size)
    else:
        shape = (size, int(math.floor(width / height * size)))
    return F.interpolate(clip, size=shape, mode="bilinear", align_corners=False)


def crop_offsets(height: int, width: int, size: int, crops: int) -> list[tuple[int, int]]:
    """(top, left) of ``crops`` square crops along the long side: 3 = start, centre, end; 1 = centre."""
    top, left = math.ceil((height - size) / 2), math.ceil((width - size) / 2)
    if crops == 1:
        return [(top, left)]
    if height > width:
        return [(0, left), (top, left), (height - size, left)]
    return [(top, 0), (top, left), (top, width - size)]


class VideoTransform:
    """raw video (anything ``load_video`` accepts) -> (clips * crops, 3, frames, size, size)."""

    def __init__(self, train: bool = False, clips: int = 5, clip_seconds: float = 2.0, frames: int = 2,
                 size: int = 224, crops: int = 3, mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD) -> None:
        for name, value in (("clips", clips), ("frames", frames)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"video option {name}={value!r}: expected a positive integer")
        if not clip_seconds > 0:
            raise ValueError(f"video option clip_seconds={clip_seconds!r}: expected a positive number")
        if crops not in (1, 3):
            raise ValueError(f"video option crops={crops!r}: expected 1 (centre) or 3 (start, centre, end)")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"video options mean and std need 3 values each (std > 0), got {mean!r}, {std!r}")
        self.train = bool(train)
        self.clips, self.clip_seconds, self.frames = clips, float(clip_seconds), frames
        self.size = check_size(size)
        self.crops = 1 if self.train else crops
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1, 1)

    def clip_indices(self, video: Video) -> list[list[int]]:
        """Frame indices of each clip."""
        if self.train:  # random starts, kept in order
            latest = max(video.duration - self.clip_seconds, 0.0)
            starts = sorted((latest * torch.rand(self.clips)).tolist())
            times = [(Fraction(s), Fraction(s) + Fraction(self.clip_seconds)) for s in starts]
        else:
            times = clip_times(video.duration, self.clips, self.clip_seconds)
        return [clip_frame_indices(video, float(start), float(end), self.frames) for start, end in times]

    def __call__(self, raw: Any) -> torch.Tensor:
        video = load_video(raw)
        per_clip = self.clip_indices(video)
        flat = [i for clip in per_clip for i in clip]
        pixels = torch.from_numpy(np.ascontiguousarray(video.read(flat)))  # (N, H, W, 3) uint8
        pixels = pixels.permute(3, 0, 1, 2).float() / 255.0  # (3, N, H, W)
        pixels = (short_side_resize(pixels, self.size) - self.mean) / self.std
        height, width = pixels.shape[-2:]
        if self.train:
            offsets = [(int(torch.randint(0, height - self.size + 1, ()).item()),
                        int(torch.randint(0, width - self.size + 1, ()).item()))]
        else:
            offsets = crop_offsets(height, width, self.size, self.crops)
        out = []
        for c in range(len(per_clip)):
            clip = pixels[:, c * self.frames:(c + 1) * self.frames]
            out += [clip[:, :, top:top + self.size, left:left + self.size] for top, left in offsets]
        return torch.stack(out).contiguous()


def collate_video(items: list[torch.Tensor]) -> torch.Tensor:
    """Stack (clips, 3, T, S, S) samples to (B, clips, 3, T, S, S); mismatched sizes are named."""
    shapes = {tuple(t.shape) for t in items}
    if len(shapes) > 1:
        raise ValueError(f"video samples of different shapes {sorted(shapes)}: all samples of a batch need "
                         f"the same clips, crops, frames and size")
    return torch.stack(items)
