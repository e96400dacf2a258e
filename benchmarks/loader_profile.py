"""Where the bind loader of a recipe spends its time, against the step it feeds, in one run.

    python benchmarks/loader_profile.py [recipes/digits.toml] [--batches 3] [--threads 1] [--cprofile] [--label L]

For every tower of the recipe that the loader feeds (not the cached anchor, not a frozen tower
whose features are precomputed), one batch of the first binding epoch's plan is loaded with the
train transforms, BATCHES times: the first pass per modality (``load + transform``, what an epoch
costs when nothing is cached), the steady passes (what BindDataset costs every epoch, with its
caches warm) and the collate. Then the same batches go through BindStage.train_step (forward,
backward, optimizer), so the loader's share of a step is read in one run. The anchor is not
pretrained (loading costs do not depend on weights). ``--cprofile`` adds the 25 functions with
the most cumulative time of one steady batch. The machine is shared: compare rows, not absolutes.
The last line is one JSON object (also written to benchmarks/results/loader_profile.json).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _common  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe", nargs="?", default="recipes/digits.toml")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--label", default="", help="suffix of the result file and title, e.g. before")
    _common.add_threads_option(parser)
    args = parser.parse_args()
    _common.apply_threads(args)

    import torch

    from mmbind.binder import Binder
    from mmbind.recipe import load_recipe
    from mmbind.training.bind import BindStage
    from mmbind.training.metrics import MetricsLog
    from mmbind.training.trainer import training_split

    out = _common.Printer()
    recipe = load_recipe(args.recipe)
    started = time.perf_counter()
    data = recipe.load_data()
    out(f"dataset loaded in {time.perf_counter() - started:.1f} s")
    split = training_split(data, recipe)
    binder = Binder(recipe.binder_config())
    binder.freeze_anchor()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        stage = BindStage(recipe, binder, split, torch.device("cpu"), MetricsLog(Path(tmp) / "m.jsonl"), Path(tmp))
        out(f"bind stage set up (frozen features, anchor cache) in {time.perf_counter() - started:.1f} s")
    dataset = stage.dataset
    plan = stage.plan(0)[:args.batches]
    fed = [m for m in recipe.bound if m not in stage.features]

    timings: dict[str, dict[str, float]] = {m: {"first": 0.0, "steady": 0.0, "collate": 0.0} for m in fed}
    batches = []
    for number, items in enumerate(plan):
        loaded = []
        for m in fed:
            part = [item for item in items if item.modality == m]
            seconds, got = _common.timed(lambda: dataset.__getitems__(part))
            timings[m]["first" if number == 0 else "steady"] += seconds
            loaded += got
            seconds, _ = _common.timed(lambda: dataset.collate(got))
            timings[m]["collate"] += seconds
        batches.append(dataset.collate(dataset.__getitems__(items)))
    steady = max(1, len(plan) - 1)
    step_seconds = []
    for number, batch in enumerate(batches):
        seconds, _ = _common.timed(lambda: stage.train_step(batch))
        step_seconds.append(seconds)
    step = _common.median(step_seconds[1:] or step_seconds)
    total_load = sum(t["steady"] for t in timings.values()) / steady
    out(f"{'modality':10s} {'first ms':>9s} {'steady ms':>10s} {'collate ms':>11s}  (one batch of {recipe.bind.batch_size})")
    for m, t in timings.items():
        out(f"{m:10s} {1000 * t['first']:9.1f} {1000 * t['steady'] / steady:10.1f} "
            f"{1000 * t['collate'] / len(plan):11.1f}")
    out(f"loading a batch (steady): {1000 * total_load:.0f} ms; train step: {1000 * step:.0f} ms; "
        f"loading / (loading + step) = {total_load / (total_load + step):.1%} with no workers")
    share = total_load / (total_load + step)
    result = {"title": "Loader profile" + (f" ({args.label})" if args.label else ""), "ratio": round(share, 4), "target": "< 0.5", "met": share < 0.5,
              "ratio_meaning": "loading / (loading + step) with no workers: one loader worker on a core of "
                               "its own hides the loading when this is below 0.5",
              "setup": {"recipe": args.recipe, "batches": args.batches, "threads": torch.get_num_threads()},
              "batch_size": recipe.bind.batch_size, "step_seconds": round(step, 4),
              "load_seconds": round(total_load, 4),
              "modalities": {m: {k: round(v / (1 if k == 'first' else steady if k == 'steady' else len(plan)), 4)
                                 for k, v in t.items()} for m, t in timings.items()}}
    if args.cprofile:
        import cProfile
        import io
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        dataset.collate(dataset.__getitems__(plan[-1]))
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
        out(text.getvalue())
    _common.finish("loader_profile" + (f"-{args.label}" if args.label else ""), result, out.lines)


if __name__ == "__main__":
    main()
