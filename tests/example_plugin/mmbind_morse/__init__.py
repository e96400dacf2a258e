"""A Morse-code modality for mmbind: a digit keyed as an on/off signal, bound to handwritten digits.

Only hook implementations live here; torch is imported inside the functions that need it,
so `mmbind --help` stays fast with this plugin installed.
"""
from pathlib import Path

import numpy as np

import mmbind

CODES = ["-----", ".----", "..---", "...--", "....-", ".....", "-....", "--...", "---..", "----."]


def load_morse(x):
    """A .txt file or string of dots and dashes, or a 1-D on/off signal array."""
    if isinstance(x, (str, Path)) and Path(x).suffix == ".txt":
        path = Path(x)
        if not path.is_file():
            raise mmbind.InputError(f"{path}: no such file (expected a .txt file of dots and dashes)")
        x = path.read_text().strip()
    if isinstance(x, str):
        if not x or set(x) - {".", "-"}:
            raise mmbind.InputError(f"{x!r}: expected only '.' and '-' characters")
        return key_signal(x, unit=3)
    signal = np.asarray(x, dtype=np.float32)
    if signal.ndim != 1 or not np.isfinite(signal).all():
        raise mmbind.InputError(f"expected a finite 1-D signal, got shape {signal.shape}")
    return signal


def key_signal(code: str, unit: int, rng=None) -> np.ndarray:
    """Key a code as on/off samples: dot = 1 unit on, dash = 3 units on, 1 unit off between."""
    parts = []
    for symbol in code:
        parts += [np.ones(unit * (1 if symbol == "." else 3)), np.zeros(unit)]
    signal = np.concatenate(parts).astype(np.float32)
    if rng is not None:  # a real key is never clean: add noise
        signal += rng.normal(0, 0.1, signal.shape).astype(np.float32)
    return signal


def morse_transform(train: bool = False, length: int = 96):
    import torch

    def apply(signal):
        x = torch.zeros(1, length)
        n = min(length, len(signal))
        start = int(torch.randint(0, length - n + 1, ())) if train else 0
        x[0, start:start + n] = torch.as_tensor(signal[:n])
        return x

    return apply


def morse_gru(output_dim: int = 64, hidden: int = 64):
    from mmbind_morse.model import MorseEncoder

    return MorseEncoder(output_dim, hidden)


def morse_digits(n_per_class: int = 60, seed: int = 0) -> mmbind.BindingData:
    """Simulated Morse signals (random key speed and noise) paired by concept with the real
    8x8 handwritten digit scans of scikit-learn."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    scans = load_digits()
    splits = {}
    for split, n in (("train", n_per_class), ("test", n_per_class // 3)):
        labels = np.repeat(np.arange(10), n)
        signals = [key_signal(CODES[c], unit=int(rng.integers(2, 5)), rng=rng) for c in labels]
        half = len(scans.target) // 2
        rows = np.arange(half) if split == "train" else np.arange(half, len(scans.target))
        splits[split] = {
            "morse": mmbind.ModalitySamples(signals, labels.tolist(), [str(c) for c in labels]),
            "digits": mmbind.ModalitySamples(list(scans.images[rows]), scans.target[rows].tolist(),
                                             [str(c) for c in scans.target[rows]]),
        }
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    return mmbind.BindingData(splits, names, simulated=frozenset({"morse"}))


@mmbind.hookimpl
def register_modalities(register):
    register(mmbind.Modality("morse", load_morse, morse_transform, default_encoder="morse-gru-tiny",
                             extensions=(".txt",), description="Morse-code on/off signals"))


@mmbind.hookimpl
def register_encoders(register):
    register(mmbind.EncoderSpec("morse-gru-tiny", "morse", morse_gru, "a one-layer GRU over the signal"))


@mmbind.hookimpl
def register_datasets(register):
    register(mmbind.DatasetSpec("morse-digits", ("digits", "morse"), morse_digits,
                                "simulated Morse signals paired with real 8x8 digit scans"))
