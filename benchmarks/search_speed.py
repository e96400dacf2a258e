"""Search speed and memory of the store's streaming brute force, against FAISS, in one run.

    python benchmarks/search_speed.py [--rows 1000000] [--dim 256] [--queries 100] [--budget 256MiB]

1. Writes ROWS x DIM random unit vectors (simulated data, seeded) to an HDF5 store in a temp dir.
2. Times a batch of QUERIES top-10 queries. Each side runs in a fresh process of its own, the
   two alternating for --rounds rounds (FAISS's OpenMP threads and numpy's OpenBLAS threads
   spin after a call, so timing both in one process slows whichever runs second; each timed call
   also starts after a short pause for the same reason). The store side times its brute force
   from the file (the HDF5 chunks mapped into memory, no copy: chunked matrix products + a
   running top-k), the same algorithm over the file's chunks copied into a buffer by a reader
   thread (the path for files that cannot be mapped), and over an in-memory array; the FAISS side
   times IndexFlatIP on the same vectors in four configurations (default or BLAS code path, 1 or
   all OpenMP threads). The ratio is the store's best time from the file over the best FAISS time,
   each the best over all rounds and repeats; its target is <= 1.05.
3. Checks the store's top-10 equals FAISS flat's (recall@10).
4. In a fresh subprocess, searches with a memory budget of BUDGET (the file is several times
   larger) and reports the peak RSS growth (VmHWM, reset before the search; mapped file pages
   count) and the numpy allocations (tracemalloc).
The last line printed is one JSON object with every figure (also written to
benchmarks/results/search_speed.json for docs/performance.md).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import _common  # noqa: E402
from mmbind.search import knn_recall, search_collection, topk_blocks  # noqa: E402
from mmbind.search.streamed import plan_chunks  # noqa: E402
from mmbind.store import EmbeddingStore  # noqa: E402

TARGET = 1.05
PAUSE = 0.3  # seconds before each timed call: the other library's spinning threads go idle

COLLECTION = "bench"
FINGERPRINT = "simulated-random-unit-vectors"


def parse_size(text: str) -> int:
    units = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "kb": 10**3, "mb": 10**6, "gb": 10**9, "b": 1}
    lowered = text.strip().lower()
    for unit, factor in units.items():
        if lowered.endswith(unit):
            return int(float(lowered[: -len(unit)]) * factor)
    return int(lowered)


def write_store(path: Path, rows: int, dim: int, batch: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    with EmbeddingStore(path) as store:
        store.create_collection(COLLECTION, modality="simulated", dim=dim, fingerprint=FINGERPRINT)
        for first in range(0, rows, batch):
            n = min(batch, rows - first)
            x = rng.standard_normal((n, dim), dtype=np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            store.add(COLLECTION, x, fingerprint=FINGERPRINT)
    return time.perf_counter() - start


def queries_for(args) -> np.ndarray:
    rng = np.random.default_rng(args.seed + 1)
    return rng.standard_normal((args.queries, args.dim), dtype=np.float32)


def best_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        time.sleep(PAUSE)
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def time_store(args, store_path: str, out: Path) -> dict:
    """Subprocess mode: the store's search from the file (mapped, then copied), then in memory."""
    from threadpoolctl import threadpool_limits

    budget = parse_size(args.budget)
    queries = queries_for(args)
    unit_queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    times: dict[str, float] = {}
    with EmbeddingStore(store_path, mode="r") as store:
        # numpy's BLAS threads, like FAISS's OpenMP threads, are timed at 1 and at all threads:
        # on a busy machine fewer threads can be faster; each side's best counts.
        for threads in sorted({1, os.cpu_count() or 1}):
            with threadpool_limits(threads, user_api="blas"):
                times[f"mapped_{threads}_threads"], (scores, rows) = best_time(
                    lambda: search_collection(store, queries, COLLECTION, top_k=10, memory_budget=budget),
                    args.repeats)
        np.save(out / "store_rows.npy", rows)
        np.save(out / "store_scores.npy", scores)
        best_threads = int(min(times, key=times.get).split("_")[1])
        chunk_rows = plan_chunks(budget, args.dim, args.queries, 10, buffers=2)[0]
        chunk_rows -= chunk_rows % store.read_chunk_rows(COLLECTION)
        with threadpool_limits(best_threads, user_api="blas"):
            times["copied"], _ = best_time(lambda: topk_blocks(unit_queries, store.iter_vectors(
                COLLECTION, chunk_rows, prefetch=True, mapped=False), 10), args.repeats)
            vectors = store.vectors(COLLECTION)
            times["in_memory"], _ = best_time(lambda: topk_blocks(
                unit_queries, ((s, vectors[s:s + chunk_rows]) for s in range(0, len(vectors), chunk_rows)), 10),
                args.repeats)
        times["entries"], _ = best_time(
            lambda: store.search(queries, COLLECTION, top_k=10, memory_budget=budget), 1)
    return times


def time_faiss(args, store_path: str, out: Path) -> dict:
    """Subprocess mode: FAISS IndexFlatIP over the store's vectors, in each configuration."""
    import faiss

    with EmbeddingStore(store_path, mode="r") as store:
        vectors = store.vectors(COLLECTION)
    queries = queries_for(args)
    unit_queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(args.dim)
    start = time.perf_counter()
    index.add(vectors)
    times: dict[str, float] = {"add": time.perf_counter() - start}
    del vectors
    # its default code path and its BLAS path, with 1 and with all OpenMP threads (on a busy
    # 2-core machine OpenMP's spinning threads can make 2 threads much slower than 1)
    default_threshold = faiss.cvar.distance_compute_blas_threshold
    for threads in sorted({1, faiss.omp_get_max_threads()}):
        for path_name, threshold in (("default", default_threshold), ("blas", 1)):
            faiss.omp_set_num_threads(threads)
            faiss.cvar.distance_compute_blas_threshold = threshold
            seconds, (scores, rows) = best_time(lambda: index.search(unit_queries, 10), 1)
            if seconds < 1.5 and args.repeats > 1:  # a slow configuration: one run is enough to rank it
                seconds = min(seconds, best_time(lambda: index.search(unit_queries, 10), args.repeats - 1)[0])
            times[f"{path_name}_{threads}_threads"] = seconds
            np.save(out / f"faiss_{path_name}_rows.npy", rows)
            np.save(out / f"faiss_{path_name}_scores.npy", scores)
    times["version"] = faiss.__version__
    return times


def status_kib(field: str) -> int:
    """VmRSS (current) or VmHWM (peak) of this process in KiB, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> bool:
    # ru_maxrss survives execve (a child starts with its parent's peak), so the peak is taken
    # from VmHWM, reset to the current RSS first ("5" > clear_refs, Linux >= 4.0).
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure_memory(store_path: str, budget: int, n_queries: int, dim: int, seed: int) -> None:
    """Subprocess mode: one budgeted search; print RSS and tracemalloc figures as JSON."""
    import tracemalloc

    rng = np.random.default_rng(seed + 1)
    queries = rng.standard_normal((n_queries, dim), dtype=np.float32)
    with EmbeddingStore(store_path, mode="r") as store:
        store.info(COLLECTION)
        was_reset = reset_peak_rss()
        before_rss, before_hwm = status_kib("VmRSS"), status_kib("VmHWM")
        before_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        search_collection(store, queries, COLLECTION, top_k=10, memory_budget=budget)
        seconds = time.perf_counter() - start
        after_hwm = status_kib("VmHWM")
        after_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        search_collection(store, queries, COLLECTION, top_k=10, memory_budget=budget)
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    print(json.dumps({
        "rss_before_mib": before_rss / 1024, "hwm_before_mib": before_hwm / 1024, "hwm_reset": was_reset,
        "hwm_after_mib": after_hwm / 1024, "peak_growth_mib": (after_hwm - max(before_rss, before_hwm)) / 1024,
        "ru_maxrss_before_mib": before_maxrss / 1024, "ru_maxrss_after_mib": after_maxrss / 1024,
        "tracemalloc_peak_mib": traced_peak / 2**20, "seconds": seconds,
    }))


def run_side(side: str, store_path: Path, args) -> dict:
    """One side's timings from a fresh process (see the module docstring)."""
    command = [sys.executable, __file__, f"--time-{side}", str(store_path), "--budget", args.budget,
               "--queries", str(args.queries), "--dim", str(args.dim), "--seed", str(args.seed),
               "--repeats", str(args.repeats)]
    output = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--budget", default="256MiB", help="memory budget of the budgeted search")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per configuration and process")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per side, alternating")
    parser.add_argument("--batch", type=int, default=65536, help="rows per commit while writing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", default=None, help="where to put the temporary store")
    parser.add_argument("--measure-memory", metavar="STORE", help=argparse.SUPPRESS)
    parser.add_argument("--time-store", metavar="STORE", help=argparse.SUPPRESS)
    parser.add_argument("--time-faiss", metavar="STORE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    budget = parse_size(args.budget)
    if args.measure_memory:
        measure_memory(args.measure_memory, budget, args.queries, args.dim, args.seed)
        return
    for side, timer in (("store", time_store), ("faiss", time_faiss)):
        store_path = getattr(args, f"time_{side}")
        if store_path:
            sys.stdout.write(json.dumps(timer(args, store_path, Path(store_path).parent)) + "\n")
            return

    print = _common.Printer()  # noqa: A001  (keeps the lines for the result file)

    data_bytes = args.rows * args.dim * 4
    workdir = Path(tempfile.mkdtemp(prefix="mmbind-bench-", dir=args.tmp))
    free = shutil.disk_usage(workdir).free
    if free < 2 * data_bytes + 2**30:
        raise SystemExit(f"{workdir}: {free / 2**30:.1f} GiB free, need {(2 * data_bytes + 2**30) / 2**30:.1f} GiB")
    try:
        path = workdir / "bench.h5"
        print(f"writing {args.rows} x {args.dim} simulated unit vectors to {path} ...", flush=True)
        write_seconds = write_store(path, args.rows, args.dim, args.batch, args.seed)
        file_bytes = path.stat().st_size
        print(f"  {write_seconds:.1f} s ({args.rows / write_seconds:,.0f} rows/s), file {file_bytes / 2**30:.2f} GiB")

        rounds: list[tuple[dict, dict]] = []
        for r in range(args.rounds):
            sides = ("store", "faiss") if r % 2 == 0 else ("faiss", "store")
            timings = {side: run_side(side, path, args) for side in sides}
            rounds.append((timings["store"], timings["faiss"]))
            store_t, faiss_t = timings["store"], timings["faiss"]
            print(f"round {r + 1} (fresh processes, {' then '.join(sides)}): store from the file "
                  + ", ".join(f"{k.split('_')[1]} BLAS threads {v:.3f} s" for k, v in store_t.items()
                              if k.startswith("mapped"))
                  + f"; copied {store_t['copied']:.3f} s; in memory {store_t['in_memory']:.3f} s; FAISS "
                  + ", ".join(f"{k.replace('_threads', ' OpenMP threads').replace('_', ' path, ', 1)} {v:.3f} s"
                              for k, v in faiss_t.items() if k.endswith("_threads")), flush=True)

        def best(side: int, prefix: str = "") -> dict[str, float]:
            keys = [k for k in rounds[0][side] if k.startswith(prefix) and k not in ("add", "version", "entries")]
            return {k: round(min(r[side][k] for r in rounds), 3) for k in keys}

        store_runs, faiss_runs = best(0, "mapped"), best(1)
        best_store, best_faiss = min(store_runs, key=store_runs.get), min(faiss_runs, key=faiss_runs.get)
        other = best(0)
        print(f"best over {args.rounds} rounds x {args.repeats} calls: store from the file {store_runs[best_store]:.3f} s "
              f"({best_store}), FAISS IndexFlatIP {faiss_runs[best_faiss]:.3f} s ({best_faiss}); the same "
              f"algorithm over copied chunks {other['copied']:.3f} s, in memory {other['in_memory']:.3f} s")

        store_rows, store_scores = np.load(workdir / "store_rows.npy"), np.load(workdir / "store_scores.npy")
        faiss_rows = {name: np.load(workdir / f"faiss_{name}_rows.npy") for name in ("default", "blas")}
        faiss_scores = np.load(workdir / "faiss_default_scores.npy")
        recall = knn_recall(store_rows, faiss_rows["default"])
        recall_blas = knn_recall(store_rows, faiss_rows["blas"])
        max_score_diff = float(np.abs(np.sort(store_scores, axis=1) - np.sort(faiss_scores, axis=1)).max())
        print(f"recall@10 of the store vs FAISS flat: {recall:.4f} (BLAS path {recall_blas:.4f}), "
              f"max score difference {max_score_diff:.2e}")

        memory = subprocess.run(
            [sys.executable, __file__, "--measure-memory", str(path), "--budget", str(budget), "--queries",
             str(args.queries), "--dim", str(args.dim), "--seed", str(args.seed)],
            capture_output=True, text=True, check=True).stdout
        memory_stats = json.loads(memory.strip().splitlines()[-1])
        print(f"budgeted search in a fresh process: file {file_bytes / 2**20:.0f} MiB = "
              f"{file_bytes / budget:.1f} x the {budget / 2**20:.0f} MiB budget; peak RSS growth "
              f"{memory_stats['peak_growth_mib']:.0f} MiB, numpy peak (tracemalloc) "
              f"{memory_stats['tracemalloc_peak_mib']:.0f} MiB")

        result = {
            "benchmark": "search_speed", "rows": args.rows, "dim": args.dim, "queries": args.queries, "top_k": 10,
            "data": "simulated random unit vectors", "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
            "faiss_version": rounds[0][1]["version"], "write_seconds": round(write_seconds, 2),
            "file_mib": round(file_bytes / 2**20, 1), "budget_mib": round(budget / 2**20, 1),
            "rounds": args.rounds, "repeats": args.repeats,
            "store_seconds": store_runs, "store_best": best_store,
            "store_search_with_entries_seconds": round(min(r[0]["entries"] for r in rounds), 3),
            "copied_same_algorithm_seconds": other["copied"],
            "in_memory_same_algorithm_seconds": other["in_memory"],
            "faiss_flat_seconds": faiss_runs, "faiss_best": best_faiss,
            "faiss_add_seconds": round(min(r[1]["add"] for r in rounds), 2),
            "ratio_store_vs_faiss": round(store_runs[best_store] / faiss_runs[best_faiss], 3),
            "ratio_copied_vs_faiss": round(other["copied"] / faiss_runs[best_faiss], 3),
            "ratio_in_memory_vs_faiss": round(other["in_memory"] / faiss_runs[best_faiss], 3),
            "ratio_per_round": [round(min(v for k, v in s.items() if k.startswith("mapped"))
                                      / min(v for k, v in f.items() if k.endswith("_threads")), 3)
                                for s, f in rounds],
            "recall_at_10_vs_faiss_flat": recall, "recall_at_10_vs_faiss_flat_blas": recall_blas,
            "max_score_difference": max_score_diff,
            "budgeted_file_over_budget": round(file_bytes / budget, 2),
            "budgeted_peak_rss_growth_mib": round(memory_stats["peak_growth_mib"], 1),
            "budgeted_tracemalloc_peak_mib": round(memory_stats["tracemalloc_peak_mib"], 1),
            "budgeted_search_seconds": round(memory_stats["seconds"], 3),
        }
        print(f"ratio best store time ({best_store}) / best FAISS flat time ({best_faiss}): "
              f"{result['ratio_store_vs_faiss']:.2f} (per round {result['ratio_per_round']}); "
              f"over copied chunks {result['ratio_copied_vs_faiss']:.2f}; in memory {result['ratio_in_memory_vs_faiss']:.2f}")
        ratio = result["ratio_store_vs_faiss"]
        _common.finish("search_speed", {
            "title": "Search from the file", "ratio": ratio, "target": f"<= {TARGET}", "met": ratio <= TARGET,
            "ratio_meaning": "the store's streamed brute force from the file / FAISS IndexFlatIP, best times",
            "setup": {"rows": args.rows, "dim": args.dim, "queries": args.queries, "top_k": 10,
                      "memory budget": args.budget, "data": "simulated random unit vectors",
                      "protocol": f"each side in fresh processes, {args.rounds} alternating rounds x {args.repeats} calls"},
            **result}, print.lines)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
