"""Start-up time of the `mmbind` command against the bare interpreter, in one run.

    python benchmarks/startup.py [--repeats 10]

Times, as fresh processes: ``python -c pass``, ``mmbind --help`` and ``mmbind plugins`` (the
console script), interleaved round by round, REPEATS rounds; reports each median and the
medians' differences over the bare interpreter. Targets: --help under 0.5 s over the bare
interpreter, plugins (loads every plugin's entry point) under 1 s. For a missed target it prints
``python -X importtime``'s ten slowest imports. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _common  # noqa: E402

TARGETS = {"--help": 0.5, "plugins": 1.0}


def mmbind_command() -> list[str]:
    script = Path(sys.executable).parent / "mmbind"
    found = str(script) if script.exists() else shutil.which("mmbind")
    return [found] if found else [sys.executable, "-m", "mmbind"]


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def slowest_imports(args: list[str], n: int = 10) -> list[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c",
                           f"import sys; sys.argv = ['mmbind', *{args!r}]; from mmbind.cli import main; main()"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    return [f"{us / 1e6:.3f} s cumulative  {name}" for us, name in sorted(rows, reverse=True)[:n]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    out = _common.Printer()
    commands = {"python -c pass": [sys.executable, "-c", "pass"],
                "mmbind --help": mmbind_command() + ["--help"],
                "mmbind plugins": mmbind_command() + ["plugins"]}
    for command in commands.values():  # warm the file cache and .pyc files
        wall(command)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, command in commands.items():
            times[name].append(wall(command))
    medians = {name: _common.median(t) for name, t in times.items()}
    bare = medians["python -c pass"]
    rows, met = {}, True
    for name, command_args in (("mmbind --help", "--help"), ("mmbind plugins", "plugins")):
        over = medians[name] - bare
        target = TARGETS[command_args]
        ok = over < target
        met &= ok
        rows[name] = {"median_seconds": round(medians[name], 4), "over_bare_seconds": round(over, 4),
                      "target_over_bare_seconds": target, "met": ok}
        out(f"{name}: median {medians[name]:.3f} s, {over:.3f} s over the bare interpreter "
            f"(target < {target} s: {'met' if ok else 'MISSED'})")
        if not ok:
            out(f"slowest imports of {name}:")
            for line in slowest_imports([command_args]):
                out(f"  {line}")
    out(f"python -c pass: median {bare:.3f} s")
    worst = max(rows.values(), key=lambda r: r["over_bare_seconds"] / r["target_over_bare_seconds"])
    _common.finish("startup", {
        "title": "Start-up", "ratio": round(worst["over_bare_seconds"] / worst["target_over_bare_seconds"], 3),
        "target": "<= 1 (time over the bare interpreter / its target)", "met": met,
        "ratio_meaning": "worst of (median over bare interpreter) / target, for --help (0.5 s) and plugins (1 s)",
        "bare_interpreter_seconds": round(bare, 4), "commands": rows, "repeats": args.repeats,
        "all_seconds": {k: [round(x, 4) for x in v] for k, v in times.items()}}, out.lines)


if __name__ == "__main__":
    main()
