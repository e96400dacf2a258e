"""Audio model input: ImageBind's log-mel clips, plus mild train-time augmentation.

Eval (ImageBind): resample to 16 kHz, ``clips`` evenly spaced clips of ``clip_seconds``,
subtract each clip's mean (``center="imagebind"``: in place, clip after clip, as ImageBind),
Kaldi fbank (128 mel, 25 ms hanning window, 10 ms hop, htk_compat, dither 0, no energy), pad
with 0 / crop to ``target_frames``, normalise (x + 4.268) / 9.138.
Output: (clips, 1, mel_bins, target_frames) float32.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from mmbind_plugins.audio.io import load_audio

FBANK_MEAN = -4.268  # ImageBind's AudioSet statistics
FBANK_STD = 9.138  # 4.569 * 2, as ImageBind uses it
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
FRAMES_PER_SECOND = 102  # ImageBind's 204 frames per 2 s clip (198 are real, 6 padding)


def clip_bounds(n_samples: int, sample_rate: int, clips: int, clip_seconds: float) -> list[tuple[int, int]]:
    """Sample ranges of ``clips`` evenly spaced clips (pytorchvideo's ConstantClipsPerVideoSampler,
    as ImageBind uses it): the first starts at 0, the last ends at the end; a recording shorter
    than a clip gives the whole recording every time. Computed as ImageBind does, from the float
    duration, so the sample ranges are the same to the sample."""
    duration = n_samples / sample_rate
    length = Fraction(clip_seconds)
    step = Fraction(max(duration - clip_seconds, 0)) / max(clips - 1, 1)
    return [(int(step * i * sample_rate), int((step * i + length) * sample_rate)) for i in range(clips)]


def log_mel(clip: torch.Tensor, sample_rate: int, mel_bins: int) -> torch.Tensor:
    """Kaldi-compatible log-mel filterbank of one mono clip, mean already subtracted:
    (mel_bins, frames)."""
    from torchaudio.compliance import kaldi

    window = int(sample_rate * FRAME_LENGTH_MS / 1000)
    if clip.numel() < window:  # shorter than one frame: pad so that one frame exists
        clip = F.pad(clip, (0, window - clip.numel()))
    fbank = kaldi.fbank(
        clip[None], htk_compat=True, sample_frequency=sample_rate, use_energy=False,
        window_type="hanning", num_mel_bins=mel_bins, dither=0.0,
        frame_length=FRAME_LENGTH_MS, frame_shift=FRAME_SHIFT_MS)
    return fbank.T


def fit_frames(spec: torch.Tensor, target_frames: int) -> torch.Tensor:
    """Pad with 0 (ImageBind's value, before normalisation) or crop to ``target_frames``."""
    frames = spec.shape[-1]
    if frames < target_frames:
        return F.pad(spec, (0, target_frames - frames), value=0.0)
    return spec[..., :target_frames]


class AudioTransform:
    """raw audio (anything ``load_audio`` accepts) -> (clips, 1, mel_bins, target_frames).

    A class rather than a closure so it pickles into DataLoader worker processes.
    """

    def __init__(
        self,
        train: bool = False,
        clips: int = 3,
        clip_seconds: float = 2.0,
        mel_bins: int = 128,
        target_frames: int | None = None,
        sample_rate: int = 16_000,
        log_floor: float | None = None,
        rms_db: float | None = None,
        gain_db: float = 6.0,
        shift_seconds: float = 0.1,
        noise_prob: float = 0.5,
        snr_db: Sequence[float] = (25.0, 50.0),
        telephone_prob: float = 0.25,
        time_mask: int = 16,
        freq_mask: int = 12,
        mask_prob: float = 0.5,
        center: str = "clip",
    ) -> None:
        if center not in ("clip", "imagebind"):
            raise ValueError(f"audio option center={center!r}: expected 'clip' or 'imagebind'")
        _positive(clips=clips, clip_seconds=clip_seconds, mel_bins=mel_bins, sample_rate=sample_rate)
        if target_frames is not None:
            _positive(target_frames=target_frames)
        if len(snr_db) != 2 or snr_db[0] > snr_db[1]:
            raise ValueError(f"audio option snr_db={snr_db!r}: expected [low, high] in dB")
        for name, p in (("noise_prob", noise_prob), ("telephone_prob", telephone_prob), ("mask_prob", mask_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"audio option {name}={p!r}: expected a probability in [0, 1]")
        self.train = bool(train)
        self.clips = int(clips)
        self.clip_seconds = float(clip_seconds)
        self.mel_bins = int(mel_bins)
        self.target_frames = int(target_frames or round(FRAMES_PER_SECOND * clip_seconds))
        self.sample_rate = int(sample_rate)
        self.log_floor = None if log_floor is None else float(log_floor)
        self.rms_db = None if rms_db is None else float(rms_db)
        self.gain_db = float(gain_db)
        self.shift_seconds = float(shift_seconds)
        self.noise_prob = float(noise_prob)
        self.snr_db = (float(snr_db[0]), float(snr_db[1]))
        self.telephone_prob = float(telephone_prob)
        self.time_mask = int(time_mask)
        self.freq_mask = int(freq_mask)
        self.mask_prob = float(mask_prob)
        self.center = center

    def waveform(self, raw: Any) -> torch.Tensor:
        """Mono float32 waveform at ``sample_rate``, loudness-normalised if ``rms_db`` is set."""
        import torchaudio.functional as AF

        samples, rate = load_audio(raw)
        wave = torch.from_numpy(samples)
        if rate != self.sample_rate:
            wave = AF.resample(wave, orig_freq=rate, new_freq=self.sample_rate)
        if self.rms_db is not None:
            rms = wave.pow(2).mean().sqrt()
            if rms > 0:
                wave = wave * (10 ** (self.rms_db / 20) / rms)
        return wave

    def spectrograms(self, wave: torch.Tensor) -> torch.Tensor:
        """(clips, mel_bins, target_frames) log-mel, floored, before normalisation.

        center="clip": each clip minus its own mean. center="imagebind": each clip's mean is
        subtracted in place, clip after clip, on one copy of the waveform, as ImageBind's
        waveform2melspec does on its clip views, so where clips overlap a later clip starts from
        samples an earlier one already centred (ImageBind's tensors to the bit)."""
        if self.center == "imagebind":
            wave = wave.clone()
        specs = []
        for start, end in clip_bounds(wave.numel(), self.sample_rate, self.clips, self.clip_seconds):
            if self.center == "clip":
                clip = wave[start:end] - wave[start:end].mean()
            else:
                clip = wave[start:end]
                clip -= clip.mean()
            spec = log_mel(clip, self.sample_rate, self.mel_bins)
            if self.log_floor is not None:
                # Digital silence gives log(float eps) = -15.9, far below any recorded quiet;
                # the floor makes padded silence look like the quiet the model was trained on.
                spec = spec.clamp(min=self.log_floor)
            specs.append(fit_frames(spec, self.target_frames))
        return torch.stack(specs)

    def __call__(self, raw: Any) -> torch.Tensor:
        return self.finish(self.waveform(raw))

    def precompute(self, raw: Any) -> torch.Tensor:
        """``waveform``: deterministic, computed once per sample by the trainer."""
        return self.waveform(raw)

    def finish(self, wave: torch.Tensor) -> torch.Tensor:
        """Augment (train), log-mel clips, mask (train) from ``precompute``'s waveform."""
        if self.train:
            wave = augment_waveform(wave, self.sample_rate, self.gain_db, self.shift_seconds,
                                    self.noise_prob, self.snr_db, self.telephone_prob)
        specs = (self.spectrograms(wave) - FBANK_MEAN) / FBANK_STD
        if self.train:
            specs = torch.stack([spec_mask(s, self.time_mask, self.freq_mask, self.mask_prob) for s in specs])
        return specs[:, None].float().contiguous()


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"audio option {name}={value!r}: expected a positive number")


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * torch.rand(()).item()


def augment_waveform(
    wave: torch.Tensor,
    sample_rate: int,
    gain_db: float,
    shift_seconds: float,
    noise_prob: float,
    snr_db: tuple[float, float],
    telephone_prob: float,
) -> torch.Tensor:
    """Mild waveform augmentation: gain, shift, white noise at a random SNR, telephone band.

    Mild on purpose: noise and the telephone band each hit only part of the clips, so clean
    clips stay in training (strong augmentation made a small model underfit its training set).
    """
    wave = wave * 10 ** (_uniform(-gain_db, gain_db) / 20)
    max_shift = int(shift_seconds * sample_rate)
    if max_shift > 0:
        shift = int(torch.randint(-max_shift, max_shift + 1, ()).item())
        if shift > 0:
            wave = F.pad(wave, (shift, 0))
        elif shift < 0 and wave.numel() + shift > 0:
            wave = wave[-shift:]
    if torch.rand(()).item() < telephone_prob:
        wave = telephone_band(wave, sample_rate)
    if torch.rand(()).item() < noise_prob:
        power = wave.pow(2).mean()
        if power > 0:
            snr = _uniform(*snr_db)
            wave = wave + torch.randn_like(wave) * torch.sqrt(power / 10 ** (snr / 10))
    return wave


def telephone_band(wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """An 8 kHz round trip (nothing above 4 kHz), a 300 Hz high-pass and 8-bit mu-law, as the
    real telephone-prompt recordings sound."""
    import torchaudio.functional as AF

    if sample_rate > 8000:
        narrow = AF.resample(wave, sample_rate, 8000)
        narrow = AF.highpass_biquad(narrow, 8000, 300.0)
        peak = narrow.abs().max().clamp(min=1e-8)
        coded = AF.mu_law_encoding((narrow / peak).clamp(-1, 1), 256)
        narrow = AF.mu_law_decoding(coded, 256) * peak
        wave = AF.resample(narrow, 8000, sample_rate)
    return wave


def spec_mask(spec: torch.Tensor, time_mask: int, freq_mask: int, prob: float) -> torch.Tensor:
    """SpecAugment-style: with probability ``prob`` each, one band of up to ``freq_mask`` mel bins
    and one span of up to ``time_mask`` frames set to 0 (the normalised mean)."""
    spec = spec.clone()
    bins, frames = spec.shape
    if freq_mask > 0 and torch.rand(()).item() < prob:
        width = int(torch.randint(0, min(freq_mask, bins) + 1, ()).item())
        start = int(torch.randint(0, bins - width + 1, ()).item())
        spec[start:start + width] = 0.0
    if time_mask > 0 and torch.rand(()).item() < prob:
        width = int(torch.randint(0, min(time_mask, frames) + 1, ()).item())
        start = int(torch.randint(0, frames - width + 1, ()).item())
        spec[:, start:start + width] = 0.0
    return spec


def collate_audio(items: list[torch.Tensor]) -> torch.Tensor:
    """Stack (clips, 1, M, T) samples to (B, clips, 1, M, T); mismatched sizes are named."""
    shapes = {tuple(t.shape) for t in items}
    if len(shapes) > 1:
        raise ValueError(f"audio samples of different shapes {sorted(shapes)}: all samples of a batch "
                         f"need the same clips, mel_bins and target_frames")
    return torch.stack(items)
