"""The audio plugin on real recordings (Debian asterisk prompts): loading, ImageBind's log-mel
clips checked against torchaudio's Kaldi fbank, augmentation, bad files, encoders."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio.functional as AF
from torchaudio.compliance import kaldi

import mmbind
from mmbind_plugins.audio.features import FBANK_MEAN, FBANK_STD, AudioTransform, telephone_band

VOICE = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
SEVEN = VOICE / "digits" / "7.wav"  # real 8 kHz recording, 0.82 s
INTRO = VOICE / "vm-intro.wav"  # real 8 kHz recording, 5.65 s
HELLO = VOICE / "hello-world.wav"
ECHO = VOICE / "demo-echotest.wav"  # real 8 kHz recording, 22 s

pytestmark = pytest.mark.skipif(not SEVEN.is_file(), reason="needs Debian asterisk-core-sounds-en-wav")


def kaldi_fbank(wave16k: torch.Tensor) -> torch.Tensor:
    """The reference: torchaudio's Kaldi fbank with ImageBind's parameters, (mel, frames)."""
    return kaldi.fbank((wave16k - wave16k.mean())[None], num_mel_bins=128, frame_length=25, frame_shift=10,
                       window_type="hanning", htk_compat=True, dither=0.0, use_energy=False,
                       sample_frequency=16000).T


def read16k(path: Path) -> torch.Tensor:
    data, rate = soundfile.read(str(path), dtype="float32")
    return AF.resample(torch.from_numpy(data), rate, 16000)


@pytest.fixture(scope="module")
def audio():
    return mmbind.get_modality("audio")


@pytest.fixture(scope="module")
def stereo_flac(tmp_path_factory) -> Path:
    """A 44.1 kHz stereo FLAC of two real prompts: left vm-intro, right hello-world (padded)."""
    left = AF.resample(read16k(INTRO), 16000, 44100)
    right = AF.resample(read16k(HELLO), 16000, 44100)
    right = torch.nn.functional.pad(right, (0, left.numel() - right.numel()))
    path = tmp_path_factory.mktemp("audio") / "stereo.flac"
    soundfile.write(str(path), torch.stack([left, right], dim=1).numpy(), 44100)
    return path


def test_registered(audio):
    assert audio.default_encoder == "audio-cnn-tiny"
    assert {"audio-cnn-tiny", "audio-cnn-small", "audio-vit-base"} <= set(mmbind.list_encoders(modality="audio"))


def test_load_real_wav_and_stereo_flac(audio, stereo_flac):
    seven = audio.load(SEVEN)
    assert seven.sample_rate == 8000 and seven.samples.shape == (6561,) and seven.samples.dtype == np.float32
    assert 0.3 < np.abs(seven.samples).max() <= 1.0
    both = audio.load(str(stereo_flac))
    data, rate = soundfile.read(str(stereo_flac), dtype="float32")
    assert rate == 44100 and data.shape[1] == 2
    np.testing.assert_allclose(both.samples, data.mean(axis=1), atol=1e-7)  # downmixed
    assert both.sample_rate == 44100
    again = audio.load(both)  # load is idempotent: a transform may load what load returned
    assert again.sample_rate == 44100 and np.array_equal(again.samples, both.samples)


def test_arrays_tuples_and_tensors(audio):
    tone = np.sin(np.linspace(0, 200, 8000)).astype(np.float32)
    assert audio.load(tone).sample_rate == 16000  # a bare array is taken as 16 kHz
    assert audio.load((tone, 8000)).sample_rate == 8000
    assert audio.load(torch.from_numpy(tone)).samples.shape == (8000,)
    stereo = audio.load((np.stack([tone, -tone]), 22050))  # (channels, samples)
    np.testing.assert_allclose(stereo.samples, 0.0, atol=1e-7)
    pcm = audio.load(((tone * 32767).astype(np.int16), 16000))  # int16 PCM scaled to [-1, 1]
    np.testing.assert_allclose(pcm.samples, tone, atol=1e-4)
    # a (waveform, rate) tuple is resampled: 0.5 s at 8 kHz gives 0.5 s at 16 kHz = 8000 samples
    wave = AudioTransform(clips=1).waveform((tone[:4000], 8000))
    assert wave.shape == (8000,)


def test_eval_transform_real_short_clip(audio):
    x = audio.transform()(SEVEN)
    assert x.shape == (3, 1, 128, 204) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    # A 0.82 s recording is shorter than a 2 s clip, so every clip is the whole recording.
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    # 0.82 s at 16 kHz = 13122 samples -> 1 + (13122 - 400) // 160 = 80 real frames, then 0-padding.
    pad = (0.0 - FBANK_MEAN) / FBANK_STD
    assert torch.allclose(x[0, 0, :, 80:], torch.full((128, 124), pad))
    assert not torch.allclose(x[0, 0, :, 79], torch.full((128,), pad))
    # Normalised range: log(float eps) = -15.94 is the lowest value Kaldi's fbank gives.
    assert x.min() >= (-15.95 - FBANK_MEAN) / FBANK_STD and x.max() < 3.0


def test_fbank_matches_kaldi_reference(audio):
    x = audio.transform()(SEVEN)
    reference = kaldi_fbank(read16k(SEVEN))
    assert reference.shape == (128, 80)
    fbank = x[0, 0] * FBANK_STD + FBANK_MEAN  # undo the normalisation
    torch.testing.assert_close(fbank[:, :80], reference, atol=1e-5, rtol=0)


def test_three_evenly_spaced_clips_of_a_long_stereo_file(audio, stereo_flac):
    x = audio.transform()(stereo_flac)
    assert x.shape == (3, 1, 128, 204)
    data, rate = soundfile.read(str(stereo_flac), dtype="float32")
    wave = AF.resample(torch.from_numpy(data.mean(axis=1)), rate, 16000)
    duration = wave.numel() / 16000  # 5.65 s: clips start at 0, 1.83 and 3.65 s
    for i, start in enumerate(np.linspace(0, duration - 2.0, 3)):
        begin = int(start * 16000)
        reference = kaldi_fbank(wave[begin:begin + 32000])
        assert reference.shape == (128, 198)
        torch.testing.assert_close(x[i, 0, :, :198] * FBANK_STD + FBANK_MEAN, reference, atol=1e-4, rtol=1e-5)
    assert not torch.allclose(x[0], x[2])


def test_options_change_sizes(audio):
    x = audio.transform(clips=2, clip_seconds=1.0, mel_bins=64)(SEVEN)
    assert x.shape == (2, 1, 64, 102)  # target_frames follows clip_seconds: 102 per second
    assert audio.transform(target_frames=100)(SEVEN).shape == (3, 1, 128, 100)
    with pytest.raises(ValueError, match="clips"):
        audio.transform(clips=0)


def test_log_floor_lifts_digital_silence(audio):
    seven = audio.load(SEVEN)
    padded = (np.concatenate([np.zeros(8000, np.float32), seven.samples]), 8000)  # 1 s of digital silence
    plain = AudioTransform(clips=1).spectrograms(AudioTransform().waveform(padded))
    floored = AudioTransform(clips=1, log_floor=-10.0).spectrograms(AudioTransform().waveform(padded))
    assert plain.min() < -15.0  # log(float eps): far below any recorded quiet
    assert floored.min() >= -10.0
    loud = plain > -10.0
    assert torch.equal(floored[loud], plain[loud])  # only values under the floor change


def test_train_augmentation_is_mild_and_random(audio):
    torch.manual_seed(0)
    evaluation = audio.transform()(INTRO)
    other = audio.transform()(ECHO)  # another utterance of the same speaker
    train = audio.transform(train=True)
    draws = [train(INTRO) for _ in range(12)]
    assert all(d.shape == evaluation.shape for d in draws)
    assert not torch.equal(draws[0], draws[1])

    def corr(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1])

    # Mild: every augmented draw still looks more like its own utterance than like another one.
    for draw in draws:
        assert corr(draw, evaluation) > corr(draw, other) + 0.05
    # Every augmentation switched off gives the eval transform exactly.
    off = audio.transform(train=True, gain_db=0, shift_seconds=0, noise_prob=0, telephone_prob=0, mask_prob=0)
    torch.testing.assert_close(off(INTRO), evaluation)


def test_telephone_band_removes_high_frequencies():
    torch.manual_seed(1)
    noise = torch.randn(32000) * 0.1
    spec = kaldi_fbank(noise)
    phone = kaldi_fbank(telephone_band(noise, 16000))
    mel_4k = int(128 * (2595 * np.log10(1 + 4000 / 700)) / (2595 * np.log10(1 + 8000 / 700)))
    high_drop = (spec[mel_4k + 4:] - phone[mel_4k + 4:]).mean()
    low_drop = (spec[10:mel_4k - 4] - phone[10:mel_4k - 4]).mean()
    assert high_drop > 5.0 > abs(low_drop)  # > 20 dB less energy above 4 kHz, little change below


def test_bad_files_name_the_file(audio, tmp_path):
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(SEVEN.read_bytes()[:6000])
    with pytest.raises(mmbind.InputError, match=r"truncated\.wav.*truncated WAV"):
        audio.load(truncated)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(mmbind.InputError, match=r"empty\.wav.*empty"):
        audio.load(empty)
    with pytest.raises(mmbind.InputError, match=r"missing\.flac.*no such audio file"):
        audio.load(tmp_path / "missing.flac")
    header_only = tmp_path / "header.wav"
    header_only.write_bytes(SEVEN.read_bytes()[:30])
    with pytest.raises(mmbind.InputError, match=r"header\.wav"):
        audio.load(header_only)
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is text, not audio\n" * 20)
    with pytest.raises(mmbind.InputError, match=r"notes\.wav.*cannot be read as audio"):
        audio.load(not_audio)
    with pytest.raises(mmbind.InputError, match="NaN"):
        audio.load(np.array([0.1, np.nan, 0.2], np.float32))
    with pytest.raises(mmbind.InputError, match="no audio samples"):
        audio.load((np.zeros(0, np.float32), 16000))
    with pytest.raises(mmbind.InputError, match="sample rate"):
        audio.load((np.zeros(100, np.float32), -5))
    with pytest.raises(mmbind.InputError, match="NaN"):  # the transform loads too
        audio.transform()(np.full(100, np.inf, np.float32))


def test_collate_and_cnn_encoders(audio):
    x = audio.transform()(SEVEN)
    y = audio.transform()(INTRO)
    batch = audio.collate([x, y])
    assert batch.shape == (2, 3, 1, 128, 204)
    with pytest.raises(ValueError, match="different shapes"):
        audio.collate([x, audio.transform(clips=2)(SEVEN)])
    tiny = mmbind.create_encoder("audio-cnn-tiny").eval()
    assert 80_000 < sum(p.numel() for p in tiny.parameters()) < 120_000
    assert tiny.output_dim == 256
    with torch.no_grad():
        out = tiny(batch)
        assert out.shape == (2, 256) and torch.isfinite(out).all()
        # ImageBind averages clip embeddings: the output is the mean of the per-clip features.
        per_clip = torch.stack([tiny(batch[:, i:i + 1]) for i in range(3)]).mean(0)
        torch.testing.assert_close(out, per_clip, atol=1e-5, rtol=1e-5)
    small = mmbind.create_encoder("audio-cnn-small", output_dim=64)
    assert small(batch).shape == (2, 64)
    double = mmbind.create_encoder("audio-cnn-tiny", convs=2).eval()  # two 3x3 convs per stage
    assert 220_000 < sum(p.numel() for p in double.parameters()) < 250_000
    with torch.no_grad():
        assert double(batch).shape == (2, 256)
    with pytest.raises(ValueError, match="convs=0"):
        mmbind.create_encoder("audio-cnn-tiny", convs=0)


def test_vit_base_is_imagebind_sized(audio):
    vit = mmbind.create_encoder("audio-vit-base").eval()
    assert vit.output_dim == 768
    assert vit.backbone.grid == (12, 19)  # 16x16 patches, stride 10 on 128 x 204
    assert len(vit.backbone.transformer.blocks) == 12
    assert 85e6 < sum(p.numel() for p in vit.parameters()) < 88e6
    with torch.no_grad():
        out = vit(audio.collate([audio.transform(clips=1)(SEVEN)]))
    assert out.shape == (1, 768) and torch.isfinite(out).all()


def test_vit_grad_checkpointing_same_gradients(audio):
    torch.manual_seed(0)
    batch = audio.collate([audio.transform(clips=2)(SEVEN), audio.transform(clips=2)(HELLO)])
    options = dict(embed_dim=64, depth=2, num_heads=4, drop_path_rate=0.0)
    plain = mmbind.create_encoder("audio-vit-base", **options)
    checkpointed = mmbind.create_encoder("audio-vit-base", grad_checkpointing=True, **options)
    checkpointed.load_state_dict(plain.state_dict())
    grads = []
    for model in (plain, checkpointed):
        model.train()
        model(batch).pow(2).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="target_frames"):
        plain(audio.collate([audio.transform(clips=1, target_frames=100)(SEVEN)]))
