"""Simulated thermal: a heated wire bent into the digit, seen by an uncooled microbolometer
camera (LWIR, FLIR-Lepton-like). No real thermal digit data exists anywhere.

How it is simulated, per sample:
1. Scene temperature: ambient 15-28 C with a gentle linear gradient; the wire (the digit's
   Hershey strokes in a random style, glyphs.styled_strokes, drawn thin) 8-40 K warmer; heat
   diffusing into the board around it adds a broad, weaker halo (a Gaussian of 1.5-4 px).
2. Optics: a Gaussian point spread (0.5-1.2 px) and vignetting / lens-housing radiation, a
   radial term of up to +-1.5 K.
3. Sensor: fixed-pattern noise (per-column offsets, per-pixel offsets and gains) and temporal
   noise at an NETD of 50-120 mK.
4. Output as the camera's 8-bit video: automatic gain control maps the frame's 1st..99.5th
   percentile (with random margins) to 0..255, hot = white.
Output: uint8 (size, size).
"""
from __future__ import annotations

import numpy as np

from mmbind_plugins.digits_world.glyphs import rasterise, styled_strokes


def simulate_thermal(font: str, digit: int, rng: np.random.Generator,
                     size: int = 32, writer: bool = False) -> np.ndarray:
    """One SIMULATED 8-bit thermal frame (size, size) uint8: heated-wire digit on a cooler
    board with a diffusion halo -> optics blur and vignetting -> fixed-pattern and temporal
    noise -> automatic gain control. The module docstring gives the numbers."""
    from scipy.ndimage import gaussian_filter

    strokes = styled_strokes(font, digit, rng, writer=writer)
    wire = rasterise(strokes, size, rng, width=rng.uniform(0.04, 0.08))
    v, u = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    ambient = rng.uniform(15, 28) + rng.uniform(-1.5, 1.5) * u + rng.uniform(-1.5, 1.5) * v
    delta = rng.uniform(8, 40)
    halo = gaussian_filter(wire, rng.uniform(1.5, 4.0) * size / 32)
    heat = wire + rng.uniform(0.1, 0.35) * halo / max(halo.max(), 1e-6)
    temperature = ambient + delta * heat / max(heat.max(), 1e-6)

    seen = gaussian_filter(temperature, rng.uniform(0.5, 1.2) * size / 32)
    seen += rng.uniform(-1.5, 1.5) * (u**2 + v**2) * 2  # vignetting / housing, up to +-1.5 K
    gain = 1 + rng.normal(0, 0.02, seen.shape)
    offset = rng.normal(0, rng.uniform(0.05, 0.2), seen.shape)
    columns = rng.normal(0, rng.uniform(0.1, 0.3), (1, size))
    netd = rng.uniform(0.05, 0.12)
    frame = seen * gain + offset + columns + rng.normal(0, netd, seen.shape)
    frame -= seen.mean() * (gain - 1)  # gains act around the operating point, not around 0 C

    lo = np.percentile(frame, 1) - rng.uniform(0, 1.0)
    hi = np.percentile(frame, 99.5) + rng.uniform(0, 2.0)
    return np.clip(np.round((frame - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)
