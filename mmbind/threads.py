"""How many CPU threads a run uses: by default, the cores actually free to this process.

torch's default is one intra-op thread per core of the machine. On a shared machine that
thrashes: every parallel region waits for its slowest thread, and a thread whose core the
scheduler gave to another process makes the whole op wait (on a 2-core machine with one other
busy process, a binding step took 3-5x longer with 2 threads than with 1). So the default is
the cores this process may run on (CPU affinity, cgroup quota) minus those other processes keep
busy now (the machine's busy share over SAMPLE_SECONDS, from /proc/stat; elsewhere the 1-minute
load average, which still counts a job that ended a minute ago), at least 1, shared among
torchrun's processes on the machine;
an explicit $OMP_NUM_THREADS, ``threads`` in a recipe or ``--threads`` on the command line sets
it by hand (the latter two win).

``threads`` are the training process's intra-op threads; each loader worker process runs one
more (DataLoader's default for workers) beside them. Workers are not subtracted: once the
deterministic preprocessing is cached (a transform's ``precompute``) a worker is busy well under
half the time, and on an idle 2-core machine the digits recipe's binding took 396 s with 2
intra-op threads + 1 worker against 427 s with 1 + 1 (benchmarks/main_job.py, two runs on
2026-12-04).
"""
from __future__ import annotations

import math
import os
import time
from functools import lru_cache
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"
PROC_STAT = Path("/proc/stat")  # Linux: the first line sums every core's CPU time by kind
SAMPLE_SECONDS = 0.3  # how long free_cores watches the machine: long enough to see a busy process


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def busy_cores(seconds: float = SAMPLE_SECONDS) -> float | None:
    """How many cores the machine's processes kept busy over the next ``seconds`` (the non-idle
    share of all CPU time in /proc/stat, times the core count); None without /proc/stat."""
    def sample() -> tuple[int, int]:
        values = [int(v) for v in PROC_STAT.read_text().split("\n", 1)[0].split()[1:9]]
        return sum(values) - values[3] - values[4], sum(values)  # not idle, not waiting for I/O

    try:
        busy, total = sample()
        time.sleep(seconds)
        busy_after, total_after = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total_after <= total:
        return 0.0
    return (busy_after - busy) / (total_after - total) * (os.cpu_count() or 1)


@lru_cache(maxsize=1)
def free_cores() -> int:
    """Usable cores minus those the machine's other work keeps busy (``busy_cores``, else the
    1-minute load average; rounded), at least 1. Measured once per process, before its own work
    adds to the load."""
    cores = usable_cores()
    busy = busy_cores()
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except (AttributeError, OSError):
            busy = 0.0
    return max(1, min(cores, (os.cpu_count() or cores) - round(busy)))


def resolve_threads(threads: int = 0) -> int:
    """``threads`` if > 0; else $OMP_NUM_THREADS if set; else ``free_cores()`` shared among the
    processes torchrun started on this machine ($LOCAL_WORLD_SIZE)."""
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0: the free cores), got {threads}")
    if threads:
        return threads
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        pass
    local_processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, free_cores() // local_processes)


def apply_threads(threads: int = 0) -> int:
    """Set torch's intra-op threads to ``threads`` (0: ``resolve_threads``' choice); returns it."""
    import torch

    intra = resolve_threads(threads)
    if torch.get_num_threads() != intra:
        torch.set_num_threads(intra)
    return intra
