"""Styled digit strokes from Hershey font paths: the shared source of the simulated views.

A glyph's strokes get a random writing style (slant, rotation, aspect, size, a smooth elastic
wobble so no two samples trace the same path) and can be rasterised as a thick line with an
anti-aliased edge. The IMU simulation follows the styled path with a pen; depth and thermal
render it as a raised relief or a heated wire.
"""
from __future__ import annotations

import numpy as np

from mmbind_plugins.digits_world.sources import glyph


def densify(stroke: np.ndarray, step: float) -> np.ndarray:
    """Points every `step` units (or closer) along a polyline, keeping the corners."""
    if len(stroke) == 1:
        return stroke.copy()
    a, b = stroke[:-1], stroke[1:]
    n = np.maximum(1, np.ceil(np.sqrt(((b - a) ** 2).sum(1)) / step)).astype(int)
    seg = np.repeat(np.arange(len(a)), n)
    # position within each segment: 1/n, 2/n, ..., 1
    t = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + 1) / np.repeat(n, n)
    pts = a[seg] + (b - a)[seg] * t[:, None]
    return np.concatenate([stroke[:1], pts])


def styled_strokes(font: str, digit: int, rng: np.random.Generator,
                   wobble: float = 0.03) -> list[np.ndarray]:
    """The digit's strokes in a random style, as (k, 2) arrays in 'digit heights': x right,
    y up, centred on the glyph's bounding box, height about 1."""
    strokes = [s * np.array([1.0, -1.0]) for s in glyph(font, digit)]  # y up
    pts = np.concatenate(strokes)
    lo, hi = pts.min(0), pts.max(0)
    centre, height = (lo + hi) / 2, max(hi[1] - lo[1], 1e-6)
    slant = rng.uniform(-0.35, 0.35)
    angle = np.deg2rad(rng.uniform(-12, 12))
    aspect = np.exp(rng.uniform(np.log(0.75), np.log(1.25)))
    c, s = np.cos(angle), np.sin(angle)
    affine = np.array([[c, -s], [s, c]]) @ np.array([[aspect, slant], [0.0, 1.0]])
    # Elastic wobble: a smooth random displacement field, a few low-frequency sinusoids.
    k = rng.normal(0, 2.5, size=(3, 2))
    phase = rng.uniform(0, 2 * np.pi, size=(3, 2))
    amp = rng.normal(0, wobble, size=(3, 2))
    dense = [densify((stroke - centre) / height, 0.5 / height) for stroke in strokes]
    p = np.concatenate(dense)
    disp = np.zeros_like(p)
    for j in range(3):
        disp[:, 0] += amp[j, 0] * np.sin(p @ k[j] * np.pi + phase[j, 0])
        disp[:, 1] += amp[j, 1] * np.sin(p @ k[j][::-1] * np.pi + phase[j, 1])
    p = (p + disp) @ affine.T
    return np.split(p, np.cumsum([len(d) for d in dense])[:-1])


def rasterise(strokes: list[np.ndarray], size: int, rng: np.random.Generator,
              fill: float = 0.7, width: float = 0.09, supersample: int = 4) -> np.ndarray:
    """A (size, size) float32 coverage map in [0, 1]: the strokes drawn as lines `width` digit
    heights thick, the digit filling about `fill` of the frame at a random small offset.
    Drawn at `supersample` x the resolution through a distance transform, then averaged down
    (anti-aliased). Row 0 is the top of the image."""
    from scipy.ndimage import distance_transform_edt

    hi = size * supersample
    pts = np.concatenate(strokes)
    lo, top = pts.min(0), pts.max(0)
    extent = max(top[0] - lo[0], top[1] - lo[1], 1e-6)
    scale = fill * hi / extent  # high-resolution pixels per unit
    shift = rng.uniform(-0.06, 0.06, size=2) * hi
    centre = (lo + top) / 2
    mask = np.zeros((hi, hi), bool)
    for stroke in strokes:
        p = densify((stroke - centre) * scale, 0.5)
        col = np.round(p[:, 0] + hi / 2 + shift[0] - 0.5).astype(int)
        row = np.round(-p[:, 1] + hi / 2 + shift[1] - 0.5).astype(int)
        ok = (col >= 0) & (col < hi) & (row >= 0) & (row < hi)
        mask[row[ok], col[ok]] = True
    if not mask.any():
        return np.zeros((size, size), np.float32)
    d = distance_transform_edt(~mask)
    half = width * scale * (top[1] - lo[1]) / 2
    cover = np.clip(half + 0.5 - d, 0.0, 1.0)
    return cover.reshape(size, supersample, size, supersample).mean((1, 3)).astype(np.float32)
