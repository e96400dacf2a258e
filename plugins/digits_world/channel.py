"""Simulated recording channels for synthetic speech: what turns a clean TTS clip into something
that looks like a real recording to a classifier.

Every function takes a float32 mono signal at 16 kHz in [-1, 1] and a numpy Generator, so a clip's
degradation is fixed by its seed. REFERENCE.md section 5 found that band-limiting the training
audio to the telephone band (8 kHz round trip, band-pass, mu-law) and normalising each utterance
were what let a model trained on espeak-ng/flite transfer to the real 8 kHz asterisk recordings.
"""
from __future__ import annotations

import numpy as np

RATE = 16000


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Polyphase resampling (scipy), exact for rational ratios."""
    from math import gcd

    from scipy.signal import resample_poly

    if src == dst:
        return x.astype(np.float32, copy=False)
    g = gcd(src, dst)
    return resample_poly(x, dst // g, src // g).astype(np.float32)


def trim_silence(x: np.ndarray, threshold_db: float = -35.0, margin: int = 320) -> np.ndarray:
    """Cut leading/trailing parts quieter than threshold_db below the peak (20 ms margin kept)."""
    a = np.abs(x)
    peak = float(a.max()) if a.size else 0.0
    if peak == 0.0:
        return x
    # A short moving maximum so the zero crossings inside speech do not count as silence.
    frame = 160
    n = len(a) // frame * frame
    env = a[:n].reshape(-1, frame).max(axis=1) if n else a[:1]
    loud = np.nonzero(env > peak * 10 ** (threshold_db / 20))[0]
    start = max(0, int(loud[0]) * frame - margin)
    stop = min(len(x), (int(loud[-1]) + 1) * frame + margin)
    return x[start:stop]


def tract_length(x: np.ndarray, factor: float) -> np.ndarray:
    """Vocal tract length perturbation by resampling: factor > 1 raises pitch and formants
    (a shorter, 'more female/child' tract) and shortens the clip by the same factor."""
    if abs(factor - 1.0) < 1e-3:
        return x
    src = int(round(RATE * factor / 50)) * 50
    return resample(x, src, RATE)


def tilt(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random first-order spectral tilt (microphone / room colouring)."""
    from scipy.signal import lfilter

    a = float(rng.uniform(-0.6, 0.6))
    y = lfilter([1.0, -a], [1.0], x)  # pre-emphasis (a > 0) or low-pass-like (a < 0)
    return y.astype(np.float32)


def reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small simulated room: exponentially decaying noise impulse response, RT60 0.1-0.4 s."""
    from scipy.signal import fftconvolve

    rt60 = float(rng.uniform(0.1, 0.4))
    n = int(rt60 * RATE)
    t = np.arange(n) / RATE
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[0] = 1.0 / float(rng.uniform(0.05, 0.3))  # direct path dominates (near-field speaker)
    y = fftconvolve(x, ir)[: len(x) + n // 2]
    return (y / (np.abs(y).max() + 1e-9) * np.abs(x).max()).astype(np.float32)


def telephone(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The telephone band: 8 kHz round trip, band-pass (about 300-3400 Hz, edges drawn at
    random), 8-bit mu-law companding, back to 16 kHz."""
    from scipy.signal import butter, sosfilt

    y = resample(x, RATE, 8000).astype(np.float64)
    low = float(rng.uniform(150, 400))
    high = float(rng.uniform(3000, 3700))
    sos = butter(int(rng.integers(2, 6)), [low, high], btype="bandpass", fs=8000, output="sos")
    y = sosfilt(sos, y)
    peak = np.abs(y).max() + 1e-9
    y = y / peak * 0.9
    mu = 255.0
    enc = np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu)
    enc = np.round((enc + 1) / 2 * mu) / mu * 2 - 1  # 8-bit codes
    y = np.sign(enc) * ((1 + mu) ** np.abs(enc) - 1) / mu * peak / 0.9
    return resample(y.astype(np.float32), 8000, RATE)


def coloured_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink or brown noise (power ~ 1/f^beta, beta in {0, 1, 2}), unit RMS."""
    beta = float(rng.choice([0.0, 1.0, 2.0]))
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.arange(n // 2 + 1, dtype=np.float64)
    f[0] = 1.0
    spec /= f ** (beta / 2)
    spec[0] = 0.0
    noise = np.fft.irfft(spec, n)
    return (noise / (noise.std() + 1e-12)).astype(np.float32)


def add_noise(x: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    speech_rms = float(np.sqrt(np.mean(x**2))) + 1e-9
    noise = coloured_noise(len(x), rng) * speech_rms / 10 ** (snr_db / 20)
    return x + noise


def pad(x: np.ndarray, rng: np.random.Generator, max_s: float = 0.25) -> np.ndarray:
    """Leading and trailing digital silence of random length (real prompts have some)."""
    a = int(rng.uniform(0.0, max_s) * RATE)
    b = int(rng.uniform(0.0, max_s) * RATE)
    return np.concatenate([np.zeros(a, np.float32), x, np.zeros(b, np.float32)])


def normalise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mean normalisation (remove DC) and a random peak level between -12 and -1 dBFS."""
    x = x - x.mean()
    peak = float(np.abs(x).max()) + 1e-9
    return (x / peak * 10 ** (rng.uniform(-12, -1) / 20)).astype(np.float32)


def degrade(x: np.ndarray, rng: np.random.Generator, *, p_telephone: float = 0.9,
            p_noise: float = 0.6, p_reverb: float = 0.15,
            clean: bool = False) -> tuple[np.ndarray, dict]:
    """The whole simulated channel; returns (signal, what was applied). clean=True keeps the
    clip noise-free (only trimmed, padded and normalised) so the model also sees clean speech
    and digital silence."""
    info: dict = {"telephone": False, "snr_db": None, "reverb": False}
    x = trim_silence(x)
    if clean:
        return normalise(pad(x, rng), rng), info
    x = tilt(x, rng)
    if rng.random() < p_reverb:
        x = reverb(x, rng)
        info["reverb"] = True
    x = pad(x, rng)
    if rng.random() < p_noise:
        info["snr_db"] = round(float(rng.uniform(8, 40)), 1)
        x = add_noise(x, rng, info["snr_db"])
    if rng.random() < p_telephone:
        x = telephone(x, rng)
        info["telephone"] = True
    return normalise(x, rng), info
