"""The main job end to end: per-stage wall times of `mmbind run` on a recipe, and its data wait.

    python benchmarks/main_job.py [recipes/digits.toml] [--set KEY=VALUE ...] [--mmbind PATH] [--no-warm-eval] [--keep DIR]

Runs ``mmbind run RECIPE`` as a fresh process into a temporary run folder (the data cache is
whatever $MMBIND_CACHE / ~/.cache/mmbind holds: say whether it was warm), timed from outside,
then reads the run's own records: per-stage wall seconds (data build or load, anchor
pretraining with model set-up, binding, evaluation, embedding, report; from eval.json's
"timing", or for an mmbind without it, from the epoch records of metrics.jsonl) and binding's
data-wait share (time blocked on the loader / binding epoch time, over all epochs). Then, unless
--no-warm-eval, ``mmbind eval`` of the same run once more: evaluation with the supervised
baselines in their cache. ``--mmbind`` runs another installation (e.g. an older checkout, for a
before/after pair). Absolute times depend on the machine's load: the result records the load
average and the threads. The last line is one JSON object (benchmarks/results/main_job.json,
or main_job-<label>.json with --label).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _common  # noqa: E402

TARGET_DATA_WAIT = 0.05


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stages(run: Path, wall: float) -> dict[str, float]:
    """Per-stage seconds from the run folder (module docstring)."""
    timing = json.loads((run / "eval.json").read_text()).get("timing", {})
    metrics = records(run / "metrics.jsonl")
    epoch_seconds = {s: sum(r["seconds"] for r in metrics if r["stage"] == f"{s}_epoch") for s in ("pretrain", "bind")}
    if "data_seconds" in timing:
        out = {k.removesuffix("_seconds"): v for k, v in timing.items() if k not in ("train_seconds", "total_seconds")}
        # the report is written after eval.json: the rest of the process's time (start-up included)
        out["report"] = round(wall - timing["total_seconds"], 1)
    else:  # an mmbind without per-stage timing: the epochs' own times, the rest of training is set-up
        train = timing.get("train_seconds", 0.0)
        evaluation = json.loads((run / "eval.json").read_text()).get("eval_seconds", 0.0)
        out = {"data and set-up": round(train - epoch_seconds["pretrain"] - epoch_seconds["bind"], 1),
               "pretrain": round(epoch_seconds["pretrain"], 1), "bind": round(epoch_seconds["bind"], 1),
               "eval": evaluation, "embed": round(timing.get("total_seconds", 0.0) - train - evaluation, 1),
               "report": round(wall - timing.get("total_seconds", 0.0), 1)}
    out["process wall"] = round(wall, 1)
    return out


def data_wait(run: Path) -> tuple[float, list[float]]:
    epochs = [r for r in records(run / "metrics.jsonl") if r["stage"] == "bind_epoch"]
    total = sum(r["seconds"] for r in epochs)
    waited = sum(r["seconds"] * r["data_wait_share"] for r in epochs)
    return (waited / total if total else 0.0), [r["data_wait_share"] for r in epochs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe", nargs="?", default="recipes/digits.toml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--mmbind", default=str(Path(sys.executable).parent / "mmbind"))
    parser.add_argument("--label", default="", help="suffix of the result file, e.g. before")
    parser.add_argument("--keep", help="run folder to keep (default: a temporary one)")
    parser.add_argument("--no-warm-eval", action="store_true")
    parser.add_argument("--from-run", metavar="DIR", help="summarise a run kept earlier (--keep) instead of running")
    parser.add_argument("--wall", type=float, help="with --from-run: that run's process wall seconds")
    args = parser.parse_args()
    out = _common.Printer()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.from_run or args.keep or Path(tmp) / "run")
        command = [args.mmbind, "run", args.recipe, "--set", f'output_dir="{run}"',
                   *[x for o in args.overrides for x in ("--set", o)]]
        out(f"$ {' '.join(command)}")
        if args.from_run:
            wall = args.wall
            out(f"(summarised from {run}, run earlier; its process wall time as measured then)")
        else:
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - started
        times = stages(run, wall)
        share, per_epoch = data_wait(run)
        for name, seconds in times.items():
            out(f"{name:16s} {seconds:8.1f} s")
        out(f"bind data wait: {share:.1%} of binding ({', '.join(f'{s:.1%}' for s in per_epoch)} per epoch)")
        warm = None
        if not args.no_warm_eval:
            started = time.perf_counter()
            subprocess.run([args.mmbind, "eval", str(run), "--output", str(run / "eval-again.json")], check=True,
                           stdout=subprocess.DEVNULL)  # not over the run's eval.json, which holds its timing
            warm = round(time.perf_counter() - started, 1)
            out(f"mmbind eval again (baselines cached): {warm:.1f} s as a process")
    name = "main_job" + (f"-{args.label}" if args.label else "")
    _common.finish(name, {
        "title": "Main job" + (f" ({args.label})" if args.label else ""), "ratio": round(share, 4), "target": f"<= {TARGET_DATA_WAIT}",
        "met": share <= TARGET_DATA_WAIT, "ratio_meaning": "binding's data-wait share (blocked on the loader / epoch time)",
        "stages_seconds": times, "data_wait_per_epoch": per_epoch, "warm_eval_seconds": warm,
        "setup": {"recipe": args.recipe, "overrides": " ".join(args.overrides) or "none", "mmbind": args.mmbind,
                  "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset")},
    }, out.lines)


if __name__ == "__main__":
    main()
