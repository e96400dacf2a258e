"""Synthetic-to-real speech check for digits-world (a quick check, not a unit test).

Trains a small supervised CNN on the SYNTHETIC training audio of digits-world (espeak-ng and
flite speech through the simulated channel) and reports its accuracy on the held-out synthetic
voices and on the 60 REAL human recordings (asterisk prompts: 5 speakers, 5 languages), which
training never sees. Features: Kaldi fbank (64 mel, 25 ms / 10 ms, Hanning, htk_compat, no
dither) of the mean-removed 16 kHz waveform, a floor under the log energies (digital silence
otherwise sits far below anything in training), ImageBind's fixed normalisation, 1 s centred
on the energy.

    python benchmarks/audio_transfer.py                  # full-size data (built once, cached)
    python benchmarks/audio_transfer.py --epochs 5 --audio-per-class 100 --root /tmp/dw

Prints one line per epoch and a summary; --out writes the summary as JSON.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

N_MEL = 64
FRAMES = 100  # 1 s at a 10 ms hop
# Log-energy floor (energy 1e-6): digital silence would sit at -15.9, below anything trained on
# (see log_floor in docs/modalities-sensors.md).
LOG_FLOOR = float(np.log(1e-6))
LANGUAGES = ("en", "es", "fr", "it", "ru")


def features(wave: np.ndarray):
    """(1, N_MEL, FRAMES) normalised log-mel of one 16 kHz clip."""
    import torch
    import torchaudio

    x = torch.as_tensor(wave, dtype=torch.float32)
    x = x - x.mean()
    f = torchaudio.compliance.kaldi.fbank(
        x[None], sample_frequency=16000, num_mel_bins=N_MEL, frame_length=25, frame_shift=10,
        window_type="hanning", htk_compat=True, dither=0.0)
    f = (f.clamp(min=LOG_FLOOR) + 4.268) / 9.138
    t = f.shape[0]
    if t >= FRAMES:  # crop 1 s around the energy centre
        e = f.mean(1) - f.mean(1).min()
        centre = int((torch.arange(t) * e).sum() / (e.sum() + 1e-9))
        start = min(max(0, centre - FRAMES // 2), t - FRAMES)
        f = f[start:start + FRAMES]
    else:  # pad with the floor (silence)
        pad = (LOG_FLOOR + 4.268) / 9.138
        left = (FRAMES - t) // 2
        f = torch.cat([torch.full((left, N_MEL), pad), f,
                       torch.full((FRAMES - t - left, N_MEL), pad)])
    return f.T[None]


def load_real(path: str) -> np.ndarray:
    import soundfile as sf

    from mmbind_plugins.digits_world.channel import resample

    x, sr = sf.read(path, dtype="float32")
    return resample(x if x.ndim == 1 else x.mean(1), sr, 16000)


def model(arch: str = "cnn"):
    """Small classifiers on (1, 64, 100) log-mel inputs.
    cnn: 2-D, two 3x3 convs per stage (16, 32, 64, 96 channels), ~200k parameters.
    cnn-lite: one 3x3 conv per stage (the shape of the audio plugin's audio-cnn-tiny), ~100k.
    tc: 1-D temporal convolutions with the mel bins as channels (TC-ResNet-like), ~150k."""
    import torch.nn as nn

    def conv(i: int, o: int) -> list:
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

    def head(width: int) -> list:
        return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(width, 10)]

    if arch == "cnn":
        stages = [conv(i, o) + conv(o, o) + [nn.MaxPool2d(2)]
                  for i, o in [(1, 16), (16, 32), (32, 64), (64, 96)]]
        return nn.Sequential(*[m for s in stages for m in s], *head(96))
    if arch == "cnn-lite":
        stages = [conv(i, o) + [nn.MaxPool2d(2)]
                  for i, o in [(1, 16), (16, 32), (32, 64), (64, 96)]]
        return nn.Sequential(*[m for s in stages for m in s], *head(96))
    if arch == "tc":
        def conv1(i: int, o: int, stride: int) -> list:
            return [nn.Conv1d(i, o, 3, stride, 1, bias=False), nn.BatchNorm1d(o), nn.ReLU()]
        return nn.Sequential(nn.Flatten(1, 2), *conv1(N_MEL, 64, 1), *conv1(64, 96, 2),
                             *conv1(96, 96, 1), *conv1(96, 128, 2), *conv1(128, 128, 1),
                             nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Dropout(0.2),
                             nn.Linear(128, 10))
    raise ValueError(f"unknown --arch {arch!r}; expected cnn, cnn-lite or tc")


def augment(xb, rng: np.random.Generator):
    """SpecAugment-style masks and a random time shift, per example."""
    xb = xb.clone()
    floor = (LOG_FLOOR + 4.268) / 9.138
    for b in range(xb.shape[0]):
        f0, fw = rng.integers(0, N_MEL - 8), rng.integers(0, 8)
        t0, tw = rng.integers(0, FRAMES - 10), rng.integers(0, 10)
        xb[b, :, f0:f0 + fw] = floor
        xb[b, :, :, t0:t0 + tw] = floor
        xb[b] = xb[b].roll(int(rng.integers(-10, 11)), dims=-1)
    return xb


def accuracy(pred, labels, groups=None) -> dict:
    ok = (pred == labels).astype(float)
    out = {"all": float(ok.mean())}
    if groups is not None:
        out.update({g: float(ok[groups == g].mean()) for g in LANGUAGES if (groups == g).any()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=None, help="digits-world cache root")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--audio-per-class", type=int, default=350)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--arch", default="cnn", help="cnn (default), cnn-lite or tc")
    ap.add_argument("--out", default=None, help="write the summary JSON here")
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F

    from mmbind_plugins.digits_world.dataset import load_digits_world

    start = time.perf_counter()
    data = load_digits_world(args.root, seed=args.seed, audio_per_class=args.audio_per_class)
    t_data = time.perf_counter() - start

    # Feature extraction is many small ops: one thread is much faster than two here.
    torch.set_num_threads(1)
    sets = {}
    for split in ("train", "test", "real"):
        s = data.splits[split]["audio"]
        waves = [load_real(x) if isinstance(x, str) else x for x in s.inputs]
        sets[split] = (torch.stack([features(w) for w in waves]), np.asarray(s.labels),
                       np.array([m["language"] for m in s.meta]))
    t_feat = time.perf_counter() - start - t_data
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    net = model(args.arch)
    x_train, y_train, _ = sets["train"]
    y_t = torch.as_tensor(y_train)
    steps = args.epochs * -(-len(y_t) // args.batch_size)
    opt = torch.optim.AdamW(net.parameters(), 3e-3, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)

    def predict(x):
        net.eval()
        with torch.no_grad():
            return torch.cat([net(x[i:i + 256]) for i in range(0, len(x), 256)]).argmax(1).numpy()

    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(y_t))
        total, correct = 0.0, 0
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            out = net(augment(x_train[idx], rng))
            loss = F.cross_entropy(out, y_t[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            correct += int((out.argmax(1) == y_t[idx]).sum())
        real = accuracy(predict(sets["real"][0]), sets["real"][1], sets["real"][2])
        print(f"epoch {epoch + 1:2d}  loss {total / len(y_t):.3f}  train acc "
              f"{correct / len(y_t):.3f}  real {real['all']:.3f}  "
              + " ".join(f"{k} {v:.2f}" for k, v in real.items() if k != "all")
              + f"  ({time.perf_counter() - start:.0f} s)", flush=True)

    summary = {
        "train_clips": len(y_t),
        "synthetic_test": accuracy(predict(sets["test"][0]), sets["test"][1], sets["test"][2]),
        "real_all_60": accuracy(predict(sets["real"][0]), sets["real"][1], sets["real"][2]),
        "seconds": {"data": round(t_data, 1), "features": round(t_feat, 1),
                    "train": round(time.perf_counter() - start - t_data - t_feat, 1)},
    }
    real = summary["real_all_60"]
    print(f"\nsynthetic test (held-out voices): {summary['synthetic_test']['all']:.3f}")
    print(f"real, all 60 clips: {real['all']:.3f}   real, English (6): {real['en']:.3f}   "
          + "  ".join(f"{k} {v:.2f}" for k, v in real.items() if k not in ("all", "en")))
    print(f"time: data {t_data:.0f} s, features {t_feat:.0f} s, "
          f"training {summary['seconds']['train']:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
