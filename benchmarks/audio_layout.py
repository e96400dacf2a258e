"""The audio tower's memory layout: channels-last (NHWC, what SpectrogramCNN uses) against the
default contiguous (NCHW) layout, forward + backward of the digits recipe's audio-cnn-tiny on one
batch of log-mels, in one run.

    python benchmarks/audio_layout.py [--batch 128] [--repeats 7] [--threads 1 2]

Both copies hold the same weights and see the same input; they alternate, so each pair of
timings shares the machine's load. Reported per thread count: median milliseconds per
forward+backward of each layout and their ratio (channels-last / contiguous; lower is better),
and the largest difference of the two outputs (the layouts are the same computation, summed in
another order). The last line is one JSON object (benchmarks/results/audio_layout.json).
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _common  # noqa: E402

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "digits.toml"
TARGET = 0.8  # channels-last must save at least a fifth, or it is not worth the layout


def step_ms(model, batch) -> float:
    started = time.perf_counter()
    model(batch).sum().backward()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    import torch

    import mmbind
    from mmbind.recipe import load_recipe

    tower = load_recipe(RECIPE).towers["audio"]
    torch.manual_seed(0)
    channels_last = mmbind.create_encoder(tower.encoder, **dict(tower.options))
    contiguous = copy.deepcopy(channels_last).to(memory_format=torch.contiguous_format)
    frames = 101  # 1 s at a 10 ms hop
    mels = torch.randn(args.batch, 1, 1, int(tower.preprocess.get("mel_bins", 64)), frames)
    layouts = {"channels_last": channels_last, "contiguous": contiguous}
    print_ = _common.Printer()
    with torch.no_grad():
        difference = float((channels_last.eval()(mels) - contiguous.eval()(mels)).abs().max())
    print_(f"{tower.encoder} {dict(tower.options)}, batch {args.batch} x {tuple(mels.shape[2:])}; "
           f"max |channels-last - contiguous| output {difference:.2e}")
    rows = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        times: dict[str, list[float]] = {name: [] for name in layouts}
        for name, model in layouts.items():  # warm-up: oneDNN picks and caches its kernels
            model.train()
            step_ms(model, mels)
        for _ in range(args.repeats):
            for name, model in layouts.items():
                times[name].append(step_ms(model, mels))
        ms = {name: _common.median(t) for name, t in times.items()}
        ratio = ms["channels_last"] / ms["contiguous"]
        rows[str(threads)] = {"channels_last_ms": round(ms["channels_last"], 1),
                              "contiguous_ms": round(ms["contiguous"], 1), "ratio": round(ratio, 3)}
        print_(f"{threads} thread(s): channels-last {ms['channels_last']:.0f} ms, contiguous {ms['contiguous']:.0f} ms "
               f"per forward+backward, ratio {ratio:.3f}")
    worst = max(row["ratio"] for row in rows.values())
    _common.finish("audio_layout", {
        "title": "Audio tower layout (channels-last)", "ratio": worst, "target": f"<= {TARGET}",
        "met": worst <= TARGET,
        "ratio_meaning": "channels-last / contiguous forward+backward time of the audio tower, the worse thread count",
        "encoder": tower.encoder, "batch": args.batch, "max_abs_difference": difference, "threads": rows}, print_.lines)


if __name__ == "__main__":
    main()
