"""IMU model input: (6, length) float32, ImageBind's 6 x 2000 by default, plus train augmentation.

Augmentation acts on the physical signal before resizing: one random rotation applied to both
sensors (a watch worn at another angle), per-sensor scaling (calibration gain), a smooth time
warp and a shift (another speed or start), then jitter noise relative to each channel's spread.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmbind_plugins.imu.io import load_imu

RESIZE_MODES = ("resample", "pad")
NORMALIZE_MODES = ("none", "channel", "sensor")
SCALE_FLOOR = 1e-3  # a still sensor's near-zero spread must not blow its noise up


class ImuTransform:
    """raw IMU (anything ``load_imu`` accepts) -> (6, length) float32 tensor.

    resize: "resample" stretches the whole recording to ``length`` samples (anti-aliased linear
    interpolation; for windows of any duration), "pad" keeps the sample rate: a longer recording
    is centre-cropped, a shorter one is padded by repeating its edge values (zeros would read as
    free fall for the accelerometer).
    normalize: "none" keeps physical units; "channel" z-scores each channel per recording;
    "sensor" divides acc and gyro each by their RMS over the three axes (rotation-safe, keeps
    the direction of gravity).
    """

    def __init__(
        self,
        train: bool = False,
        length: int = 2000,
        resize: str = "resample",
        normalize: str = "none",
        rotate_degrees: float = 15.0,
        scale: float = 0.1,
        time_warp: float = 0.1,
        shift: float = 0.05,
        jitter: float = 0.02,
    ) -> None:
        if int(length) < 1:
            raise ValueError(f"imu option length={length!r}: expected a positive number of samples")
        if resize not in RESIZE_MODES:
            raise ValueError(f"imu option resize={resize!r}: expected one of {', '.join(RESIZE_MODES)}")
        if normalize not in NORMALIZE_MODES:
            raise ValueError(f"imu option normalize={normalize!r}: expected one of {', '.join(NORMALIZE_MODES)}")
        for name, value in (("scale", scale), ("time_warp", time_warp), ("shift", shift)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"imu option {name}={value!r}: expected a fraction in [0, 1)")
        self.train = bool(train)
        self.length = int(length)
        self.resize = resize
        self.normalize = normalize
        self.rotate_degrees = float(rotate_degrees)
        self.scale = float(scale)
        self.time_warp = float(time_warp)
        self.shift = float(shift)
        self.jitter = float(jitter)

    def __call__(self, raw: Any) -> torch.Tensor:
        return self.finish(self.precompute(raw))

    def precompute(self, raw: Any) -> torch.Tensor:
        """The recording as a checked (6, T) tensor: deterministic, computed once per sample by the trainer."""
        return torch.from_numpy(load_imu(raw).copy())

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        """Augment (train), resize, jitter (train) and normalise ``precompute``'s output."""
        if self.train:
            x = rotate(x, random_rotation(self.rotate_degrees))
            x = scale_sensors(x, self.scale)
            x = warp_time(x, self.time_warp, self.shift)
        x = resample(x, self.length) if self.resize == "resample" else pad_or_crop(x, self.length)
        if self.train and self.jitter > 0:
            x = x + torch.randn_like(x) * self.jitter * (x.std(dim=1, keepdim=True) + SCALE_FLOOR)
        return normalize(x, self.normalize).float().contiguous()


def resample(x: torch.Tensor, length: int) -> torch.Tensor:
    """(C, T) -> (C, length) by linear interpolation, anti-aliased when shrinking."""
    if x.shape[1] == length:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, length).clone()
    # A 2-D resize of height C -> C touches only time; 2-D modes are the ones with antialias.
    out = F.interpolate(x[None, None], size=(x.shape[0], length), mode="bilinear",
                        align_corners=False, antialias=length < x.shape[1])
    return out[0, 0]


def pad_or_crop(x: torch.Tensor, length: int) -> torch.Tensor:
    """Centre crop, or pad at the end by repeating the last sample."""
    steps = x.shape[1]
    if steps >= length:
        start = (steps - length) // 2
        return x[:, start:start + length]
    return torch.cat([x, x[:, -1:].expand(-1, length - steps)], dim=1)


def normalize(x: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "channel":
        return (x - x.mean(dim=1, keepdim=True)) / x.std(dim=1, keepdim=True).clamp(min=SCALE_FLOOR)
    if mode == "sensor":
        acc_rms = x[:3].pow(2).mean().sqrt().clamp(min=SCALE_FLOOR)
        gyro_rms = x[3:].pow(2).mean().sqrt().clamp(min=SCALE_FLOOR)
        return torch.cat([x[:3] / acc_rms, x[3:] / gyro_rms])
    return x


def random_rotation(max_degrees: float) -> torch.Tensor:
    """A 3x3 rotation about a uniformly random axis by an angle in [-max_degrees, max_degrees]."""
    axis = torch.randn(3, dtype=torch.float64)
    axis = axis / axis.norm().clamp(min=1e-12)
    angle = math.radians(max_degrees) * (2 * torch.rand((), dtype=torch.float64) - 1)
    k = torch.tensor([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]],
                     dtype=torch.float64)
    # Rodrigues' formula
    return (torch.eye(3, dtype=torch.float64) + torch.sin(angle) * k + (1 - torch.cos(angle)) * k @ k).float()


def rotate(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """The same rotation for the accelerometer and the gyroscope (one rigid body)."""
    return torch.cat([rotation @ x[:3], rotation @ x[3:]])


def scale_sensors(x: torch.Tensor, amount: float) -> torch.Tensor:
    if amount <= 0:
        return x
    factors = 1 + amount * (2 * torch.rand(2) - 1)
    return torch.cat([x[:3] * factors[0], x[3:] * factors[1]])


def warp_time(x: torch.Tensor, warp: float, shift: float) -> torch.Tensor:
    """Resample along a smooth random time axis: the local speed varies within 1 +- ``warp``
    (4 knots, linearly interpolated), and the start moves by up to ``shift`` of the length."""
    steps = x.shape[1]
    if steps < 2 or (warp <= 0 and shift <= 0):
        return x
    speed_knots = 1 + warp * (2 * torch.rand(4, dtype=torch.float64) - 1)
    speed = np.interp(np.linspace(0, 3, steps), np.arange(4), speed_knots.numpy())
    positions = np.concatenate([[0.0], np.cumsum(speed[:-1])])
    positions *= (steps - 1) / positions[-1]  # same duration, varying speed
    positions += shift * steps * float(2 * torch.rand(()) - 1)
    positions = np.clip(positions, 0, steps - 1)  # beyond the ends: the edge value repeats
    index = np.arange(steps)
    warped = np.stack([np.interp(positions, index, channel) for channel in x.numpy()])
    return torch.from_numpy(warped.astype(np.float32))


def collate_imu(items: list[torch.Tensor]) -> torch.Tensor:
    """Stack (6, length) samples to (B, 6, length); mismatched lengths are named."""
    shapes = {tuple(t.shape) for t in items}
    if len(shapes) > 1:
        raise ValueError(f"IMU samples of different shapes {sorted(shapes)}: all samples of a batch need "
                         f"the same length (set the imu preprocess option length)")
    return torch.stack(items)
