"""How many CPU threads a run uses: by default, the cores actually free to this process.

torch's default is one intra-op thread per core of the machine. On a shared machine that
thrashes: every parallel region waits for its slowest thread, and a thread whose core the
scheduler gave to another process makes the whole op wait (on a 2-core machine with one other
busy process, a binding step took 3-5x longer with 2 threads than with 1). So the default is
the cores this process may run on (CPU affinity, cgroup quota) minus those other processes keep
busy (the 1-minute load average), at least 1, shared among torchrun's processes on the machine;
an explicit $OMP_NUM_THREADS, ``threads`` in a recipe or ``--threads`` on the command line sets
it by hand (the latter two win).

The loader's worker processes count against the same total: the main process gets
``threads - num_workers`` intra-op threads (at least 1); each worker runs one (DataLoader's
default for workers).
"""
from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


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


@lru_cache(maxsize=1)
def free_cores() -> int:
    """Usable cores minus those the machine's other work keeps busy (1-minute load average,
    rounded), at least 1. Measured once per process, before its own work adds to the load."""
    cores = usable_cores()
    try:
        busy = round(os.getloadavg()[0])
    except (AttributeError, OSError):
        busy = 0
    return max(1, min(cores, (os.cpu_count() or cores) - busy))


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


def apply_threads(threads: int = 0, num_workers: int = 0) -> int:
    """Set torch's intra-op threads for a run of ``threads`` CPU threads (0: the free cores)
    of which ``num_workers`` go to loader processes; returns the intra-op thread count."""
    import torch

    intra = max(1, resolve_threads(threads) - num_workers)
    if torch.get_num_threads() != intra:
        torch.set_num_threads(intra)
    return intra
