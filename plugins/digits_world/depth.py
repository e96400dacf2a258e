"""Simulated depth: a digit as a raised (embossed) or carved (engraved) relief on a tilted plane,
seen by a structured-light depth camera (Kinect-like) at 1-3 m. No real digit depth data exists.

How it is simulated, per sample:
1. Relief: the digit's Hershey strokes in a random style (glyphs.styled_strokes), rasterised as a
   thick stroke with bevelled edges; 3-8 cm high, embossed (towards the camera) or, in 30% of
   samples, engraved. The source differs from the images it is paired with (MNIST), so a pair
   never shows the same drawing twice.
2. Scene: a plane at 1-3 m whose normal is tilted up to 35 degrees from the optical axis, seen by
   a pinhole camera (the output is a size x size crop around the digit); depth along each ray.
3. Sensor, in the disparity domain as a structured-light camera measures it (baseline 7.5 cm,
   focal length 580 px): sub-pixel matching noise (white plus spatially correlated) and
   quantisation to 1/8 pixel, so the depth error grows with depth squared (about 1 cm at 2 m).
4. Missing pixels (value 0.0, the raw Kinect/RealSense convention): the projector's shadow next
   to relief edges on one side, random dropouts and a few dropout blobs.
Output: float32 (size, size) depth in metres, 0.0 where the sensor returned nothing.
"""
from __future__ import annotations

import numpy as np

from mmbind_plugins.digits_world.glyphs import rasterise, styled_strokes

BASELINE = 0.075  # m, Kinect v1
FOCAL = 580.0  # px, the sensor's native focal length (sets the disparity noise scale)


def simulate_depth(font: str, digit: int, rng: np.random.Generator, size: int = 32,
                   writer: bool = False) -> np.ndarray:
    """One SIMULATED structured-light depth map (size, size) float32 in metres, 0.0 = missing:
    styled glyph relief on a tilted plane -> pinhole depth -> disparity noise and 1/8 px
    quantisation -> projector shadows and dropouts. The module docstring gives the numbers."""
    from scipy.ndimage import gaussian_filter

    strokes = styled_strokes(font, digit, rng, writer=writer)
    cover = rasterise(strokes, size, rng, width=rng.uniform(0.09, 0.16))
    bevel = gaussian_filter(cover, rng.uniform(0.3, 0.8))
    sign = -1.0 if rng.random() < 0.3 else 1.0
    relief = sign * rng.uniform(0.03, 0.08) * np.clip(bevel / max(bevel.max(), 1e-6), 0, 1)

    # Plane n . X = d0 seen through a pinhole; the crop spans a field of view of 12-20 degrees.
    distance = rng.uniform(1.0, 3.0)
    fov = np.deg2rad(rng.uniform(12, 20))
    f = size / (2 * np.tan(fov / 2))
    tilt, azimuth = np.deg2rad(rng.uniform(0, 35)), rng.uniform(0, 2 * np.pi)
    normal = np.array([np.sin(tilt) * np.cos(azimuth), np.sin(tilt) * np.sin(azimuth),
                       np.cos(tilt)])
    v, u = np.mgrid[0:size, 0:size] + 0.5
    rays = np.stack([(u - size / 2) / f, (v - size / 2) / f, np.ones_like(u)], -1)
    z = distance / (rays @ normal)  # depth (z) of the plane along each pixel's ray
    z = z - relief * normal[2]  # embossed strokes come towards the camera

    # Structured-light measurement in disparity: white + correlated matching noise, 1/8 px steps.
    disparity = BASELINE * FOCAL / z
    sigma = rng.uniform(0.05, 0.12)
    noise = rng.normal(0, sigma, z.shape) + gaussian_filter(
        rng.normal(0, sigma * 3, z.shape), 1.5)
    disparity = np.round((disparity + noise) * 8) / 8
    depth = BASELINE * FOCAL / np.maximum(disparity, 1e-3)

    # Missing pixels: projector shadow at edges where the relief steps (one side only, along
    # the baseline), random dropouts and blobs.
    step = np.diff(relief, axis=1, prepend=relief[:, :1]) * sign
    shadow = step < -rng.uniform(0.25, 0.5) * np.abs(relief).max()
    missing = shadow | (rng.random(z.shape) < rng.uniform(0.0, 0.03))
    for _ in range(int(rng.integers(0, 3))):
        cy, cx = rng.uniform(0, size, 2)
        r = rng.uniform(0.5, 2.0) * size / 32
        missing |= (v - cy) ** 2 + (u - cx) ** 2 < r**2
    depth[missing] = 0.0
    return depth.astype(np.float32)
