"""Simulated IMU: accelerometer + gyroscope of a pen writing a digit (no real data exists).

How it is simulated, per sample:
1. Path: the digit's Hershey strokes in a random style (glyphs.styled_strokes), scaled to a
   real handwriting size (8-25 mm tall) on a horizontal sheet of paper.
2. Motion: each stroke is traced pen-down with a minimum-jerk speed profile (bell-shaped speed,
   slow at the ends); between strokes the pen lifts 2-8 mm and travels to the next stroke
   (a minimum-jerk move with a sine-shaped lift); the pen comes down at the start and lifts at
   the end, with random rests before and after. Writing speed is random (25-70 mm/s).
3. Pen orientation: held at a random tilt (30-60 degrees from vertical) and azimuth, and pivots
   with the tip position (wrist/finger rotation) plus a slow random twist.
4. Sensor: mounted on the barrel 8-12 cm from the tip, so rotations move it too. Its position is
   differentiated twice at 1 kHz; the accelerometer reads specific force (acceleration minus
   gravity) in the sensor frame, the gyroscope the body angular rate; both are averaged down to
   the output rate (the sensor's digital low-pass), then get a per-sample bias, a scale error
   and white noise (MEMS-grade: 0.03 m/s^2, 0.004 rad/s).
Output: float32 (6, T): ax, ay, az in m/s^2, gx, gy, gz in rad/s.
"""
from __future__ import annotations

import numpy as np

from mmbind_plugins.digits_world.glyphs import styled_strokes

SIM_RATE = 1000  # Hz, internal


def _min_jerk(n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)
    return 10 * t**3 - 15 * t**4 + 6 * t**5


def _trace(stroke: np.ndarray, duration: float) -> np.ndarray:
    """Positions along a polyline at SIM_RATE with a minimum-jerk arc-length profile."""
    n = max(2, int(duration * SIM_RATE))
    seg = np.linalg.norm(np.diff(stroke, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] <= 0:
        return np.repeat(stroke[:1], n, axis=0)
    s = _min_jerk(n) * arc[-1]
    return np.stack([np.interp(s, arc, stroke[:, 0]), np.interp(s, arc, stroke[:, 1])], 1)


def pen_tip_path(strokes: list[np.ndarray], rng: np.random.Generator,
                 total: float) -> np.ndarray:
    """(n, 3) tip positions in metres at SIM_RATE over `total` seconds (z up from the paper)."""
    height = rng.uniform(0.008, 0.025)
    speed = rng.uniform(0.025, 0.07)  # m/s along the path
    lift = rng.uniform(0.002, 0.008)
    strokes = [s * height for s in strokes]
    parts: list[np.ndarray] = []

    def updown(p: np.ndarray, down: bool) -> None:
        n = int(rng.uniform(0.08, 0.2) * SIM_RATE)
        z = lift * (1 - _min_jerk(n)) if down else lift * _min_jerk(n)
        parts.append(np.column_stack([np.repeat(p[None], n, 0), z]))

    updown(strokes[0][0], down=True)
    for i, stroke in enumerate(strokes):
        length = float(np.linalg.norm(np.diff(stroke, axis=0), axis=1).sum())
        xy = _trace(stroke, 0.05 + length / speed)
        parts.append(np.column_stack([xy, np.zeros(len(xy))]))
        if i + 1 < len(strokes):
            a, b = stroke[-1], strokes[i + 1][0]
            n = int((0.1 + np.linalg.norm(b - a) / (1.5 * speed)) * SIM_RATE)
            s = _min_jerk(max(n, 2))[:, None]
            hop = np.sin(np.pi * np.linspace(0, 1, len(s)))
            parts.append(np.column_stack([a + (b - a) * s, lift * hop]))
    updown(strokes[-1][-1], down=False)
    path = np.concatenate(parts)
    n_total = int(total * SIM_RATE)
    if len(path) > 0.9 * n_total:  # too slow to fit the window: write faster
        idx = np.linspace(0, len(path) - 1, int(0.9 * n_total))
        path = np.stack([np.interp(idx, np.arange(len(path)), path[:, j]) for j in range(3)], 1)
    rest = n_total - len(path)
    before = int(rng.uniform(0.1, 0.9) * rest)
    first = np.concatenate([path[0, :2], [lift]])[None]
    return np.concatenate([np.repeat(first, before, 0), path,
                           np.repeat(path[-1:], rest - before, 0)])


def _rz(a: np.ndarray) -> np.ndarray:
    c, s, z, o = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1),
                     np.stack([z, z, o], -1)], -2)


def _ry(a: np.ndarray) -> np.ndarray:
    c, s, z, o = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1),
                     np.stack([-s, z, c], -1)], -2)


def pen_rotations(tip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 3) pen-to-world rotations, body z along the barrel: a random tilt and azimuth
    that pivot with the tip position, and a slow twist of the barrel."""
    n = len(tip)
    tilt0 = np.deg2rad(rng.uniform(30, 60))
    azimuth0 = np.deg2rad(rng.uniform(-150, -90))  # a right-handed writer leans the pen back-right
    pivot = rng.uniform(2.0, 6.0)  # radians per metre of tip travel
    centre = tip[:, :2].mean(0)
    dx, dy = tip[:, 0] - centre[0], tip[:, 1] - centre[1]
    t = np.arange(n) / SIM_RATE
    twist = rng.uniform(0, 2 * np.pi) + sum(  # slow roll of the barrel between the fingers
        rng.uniform(0.005, 0.02) * np.sin(2 * np.pi * rng.uniform(0.2, 0.8) * t
                                          + rng.uniform(0, 2 * np.pi)) for _ in range(2))
    return _rz(azimuth0 + pivot * dx) @ _ry(tilt0 - 0.5 * pivot * dy) @ _rz(twist)


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along time (samples), edges held: a hand cannot turn a sharp corner
    with infinite acceleration."""
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(x, sigma, axis=0, mode="nearest")


def simulate_imu(font: str, digit: int, rng: np.random.Generator, length: int = 256,
                 rate: int = 100, writer: bool = False) -> np.ndarray:
    """One SIMULATED pen-IMU recording, (6, length) float32, of the digit in the given font:
    styled glyph path -> pen-down/pen-up motion -> pen orientation -> sensor on the barrel
    (specific force and angular rate at 1 kHz, averaged to `rate`) -> bias, scale error and
    noise. The module docstring gives the numbers."""
    strokes = styled_strokes(font, digit, rng, writer=writer)
    step = SIM_RATE // rate
    total = length * step / SIM_RATE + 0.01
    tip = _smooth(pen_tip_path(strokes, rng, total), rng.uniform(0.012, 0.03) * SIM_RATE)
    rot = pen_rotations(tip, rng)
    offset = rng.uniform(0.08, 0.12)
    sensor = tip + rot[:, :, 2] * offset  # on the barrel axis
    dt = 1.0 / SIM_RATE
    acc = np.gradient(np.gradient(sensor, dt, axis=0), dt, axis=0)
    specific_force = acc + np.array([0.0, 0.0, 9.81])  # at rest the accelerometer reads +1 g up
    acc_body = np.einsum("nji,nj->ni", rot, specific_force)  # R^T f
    # Body angular rate from R^T dR/dt (a skew matrix).
    w = np.einsum("nji,njk->nik", rot, np.gradient(rot, dt, axis=0))
    gyro = np.stack([w[:, 2, 1] - w[:, 1, 2], w[:, 0, 2] - w[:, 2, 0],
                     w[:, 1, 0] - w[:, 0, 1]], 1) / 2
    n = length * step
    signal = np.concatenate([acc_body[:n], gyro[:n]], 1).reshape(length, step, 6).mean(1).T
    scale = 1 + rng.normal(0, 0.02, size=(6, 1))
    bias = np.concatenate([rng.uniform(-0.15, 0.15, 3), rng.uniform(-0.02, 0.02, 3)])[:, None]
    sigma = np.array([0.03] * 3 + [0.004] * 3)[:, None]
    noisy = signal * scale + bias + rng.normal(0, 1, size=signal.shape) * sigma
    return noisy.astype(np.float32)
