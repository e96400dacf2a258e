"""A binding step with one competing CPU-bound process on the machine against without, in one run.

    python benchmarks/contention.py [recipes/digits.toml] [--rounds 3] [--steps 2]

The recipe's binding stage is built (anchor not pretrained: a step costs the same) and a few
batches of its first epoch are loaded into memory, so only the step (forward, backward,
optimizer) is timed. Rounds alternate, so that every configuration shares the machine's load:
for each torch thread count (1, and the machine's core count: torch's default), STEPS steps
alone, then STEPS steps while another process spins on a core (``while True: pass``, started
before and killed after). Reported per thread count: median step time alone and contended, and
their ratio. The target (<= 2) is for what a run gets by default: the step at the thread count
``threads = 0`` resolves to with the competitor already running, against the step at the count
it resolves to on the machine alone (each measured here, mmbind.threads.free_cores). A
competitor that starts after a run chose its threads is the per-thread-count row of the chosen
count. On a machine that is already loaded the competitor adds little: the result records the
load average. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _common  # noqa: E402

TARGET = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe", nargs="?", default="recipes/digits.toml")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()

    import torch

    from mmbind.binder import Binder
    from mmbind.recipe import load_recipe
    from mmbind.threads import free_cores, usable_cores
    from mmbind.training.bind import BindStage
    from mmbind.training.metrics import MetricsLog
    from mmbind.training.trainer import training_split

    auto = free_cores()  # measured first: before this process loads the machine itself
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:  # what threads = 0 resolves to with the competitor already running
        free_cores.cache_clear()
        auto_contended = free_cores()
    finally:
        competitor.kill()
        competitor.wait()
    out = _common.Printer()
    recipe = load_recipe(args.recipe)
    data = recipe.load_data()
    binder = Binder(recipe.binder_config())
    binder.freeze_anchor()
    with tempfile.TemporaryDirectory() as tmp:
        stage = BindStage(recipe, binder, training_split(data, recipe), torch.device("cpu"),
                          MetricsLog(Path(tmp) / "m.jsonl"), Path(tmp))
    batches = [stage.dataset.collate(stage.dataset.__getitems__(items)) for items in stage.plan(0)[:args.steps]]
    counts = sorted({1, usable_cores()})
    times: dict[tuple[int, bool], list[float]] = {(n, c): [] for n in counts for c in (False, True)}
    stage.train_step(batches[0])  # warm-up
    for _ in range(args.rounds):
        for threads in counts:
            torch.set_num_threads(threads)
            for contended in (False, True):
                competitor = (subprocess.Popen([sys.executable, "-c", "while True: pass"]) if contended else None)
                try:
                    for batch in batches:
                        seconds, _ = _common.timed(lambda: stage.train_step(batch))
                        times[threads, contended].append(seconds)
                finally:
                    if competitor is not None:
                        competitor.kill()
                        competitor.wait()
    ratios = {}
    for threads in counts:
        alone, busy = _common.median(times[threads, False]), _common.median(times[threads, True])
        ratios[threads] = busy / alone
        out(f"{threads} thread(s): {1000 * alone:.0f} ms/step alone, {1000 * busy:.0f} ms/step with a competing "
            f"process, ratio {ratios[threads]:.2f}")
    chosen, chosen_contended = min(auto, max(counts)), min(auto_contended, max(counts))
    alone = _common.median(times[chosen, False])
    ratio = _common.median(times[chosen_contended, True]) / alone
    out(f"threads = 0 resolves to {auto} on the machine alone and to {auto_contended} with the competitor running "
        f"(usable cores {usable_cores()}): contended / alone = {_common.verdict(ratio, TARGET, False)}; a competitor "
        f"arriving after the run chose {chosen}: {ratios[chosen]:.2f}")
    _common.finish("contention", {
        "title": "Contention", "ratio": round(ratio, 3), "target": f"<= {TARGET}", "met": ratio <= TARGET,
        "ratio_meaning": "median bind step time with one competing CPU-bound process / alone, each at the threads "
                         "threads = 0 resolves to",
        "ratios_by_threads": {str(k): round(v, 3) for k, v in ratios.items()}, "auto_threads": auto,
        "auto_threads_contended": auto_contended,
        "setup": {"recipe": args.recipe, "batch_size": recipe.bind.batch_size, "steps_per_round": args.steps,
                  "rounds": args.rounds, "thread_counts": counts},
    }, out.lines)


if __name__ == "__main__":
    main()
