"""Styled digit strokes from Hershey font paths: the shared source of the simulated views.

A glyph's strokes get a random writing style (slant, rotation, aspect, size, a smooth elastic
wobble so no two samples trace the same path) and can be rasterised as a thick line with an
anti-aliased edge. Training samples can also get a writer's variation (``writer_variation``, the
dataset option of the same name, off by default): each stroke moved, turned and scaled a little
on its own, its ends shortened or overshot, long strokes sometimes split by a pen lift, strokes
sometimes drawn in the other direction, and a smooth warp of the whole path, to show a model
more ways to write a digit than the five training fonts. The IMU simulation follows the styled
path with a pen; depth and thermal render it as a raised relief or a heated wire.
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
                   wobble: float = 0.03, writer: bool = False) -> list[np.ndarray]:
    """The digit's strokes in a random style, as (k, 2) arrays in 'digit heights': x right,
    y up, centred on the glyph's bounding box, height about 1. writer=True adds a writer's
    variation (writer_variation), drawn from a generator spawned from `rng` after the style,
    so the style draws of a sample do not change with it."""
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
    styled = np.split(p, np.cumsum([len(d) for d in dense])[:-1])
    if writer:
        styled = writer_variation(styled, np.random.default_rng(rng.integers(2**63)))
    return styled


# Strengths of the writer's variation (fractions of the digit height, radians, probabilities).
# Set by eye on rasterised samples: past about twice these a serif font's many short strokes
# drift apart and a 2 or 3 stops being legible.
WRITER = {"offset": 0.02, "turn": 0.08, "scale": 0.06, "trim": 0.08, "split": 0.2,
          "reverse": 0.2, "warp": 0.025}


def _smooth_warp(p: np.ndarray, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """A smooth random displacement of points (k, 2): a few random low-frequency plane waves."""
    disp = np.zeros_like(p)
    for _ in range(4):
        k = rng.normal(0, 1.2, size=2)  # about one wave per digit height: bends, not kinks
        disp += rng.normal(0, amplitude, size=2) * np.sin(np.pi * (p @ k) + rng.uniform(0, 2 * np.pi))[:, None]
    return p + disp


def _trim(stroke: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Shorten each end of a polyline by up to `amount` of its length, or overshoot it by
    extending the end segment (a hand stops early or late)."""
    if len(stroke) < 3 or amount <= 0:
        return stroke
    n = len(stroke)
    cut = rng.uniform(-amount, amount, size=2)
    start, stop = int(max(cut[0], 0) * n), n - int(max(cut[1], 0) * n)
    out = stroke[start:max(stop, start + 2)].copy()
    for end, sign in ((0, cut[0]), (-1, cut[1])):
        if sign < 0:  # overshoot: extend along the end direction
            inner = out[1] if end == 0 else out[-2]
            out[end] = out[end] + (out[end] - inner) * (-sign) * n * 0.5
    return out


def writer_variation(strokes: list[np.ndarray], rng: np.random.Generator,
                     strength: dict[str, float] | None = None) -> list[np.ndarray]:
    """A writer's variation of styled strokes (dense polylines in digit heights): every stroke
    gets its own small offset, turn and scale about its centre and trimmed or overshot ends;
    a long stroke is split by a pen lift with probability `split`; a stroke is reversed with
    probability `reverse`; then the whole path gets a smooth warp. `strength` overrides WRITER."""
    s = {**WRITER, **(strength or {})}
    out: list[np.ndarray] = []
    for stroke in strokes:
        stroke = _trim(stroke, rng, s["trim"])
        centre = stroke.mean(0)
        a = rng.normal(0, s["turn"])
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        scale = np.exp(rng.normal(0, s["scale"]))
        stroke = (stroke - centre) @ rot.T * scale + centre + rng.normal(0, s["offset"], size=2)
        if rng.random() < s["reverse"]:
            stroke = stroke[::-1]
        if len(stroke) >= 8 and rng.random() < s["split"]:
            cut = int(rng.integers(len(stroke) // 4, 3 * len(stroke) // 4))
            out += [stroke[:cut + 1], stroke[cut:]]
        else:
            out.append(stroke)
    lengths = [len(x) for x in out]
    warped = _smooth_warp(np.concatenate(out), rng, s["warp"])
    return np.split(warped, np.cumsum(lengths)[:-1])


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
