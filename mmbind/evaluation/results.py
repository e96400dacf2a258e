"""The numbers of an eval.json for people: the result tables the main job prints, the R@1
matrix, every metric under a stable name, and two runs side by side (``mmbind compare``)."""
from __future__ import annotations

import math
from typing import Any


def percent(value: Any, digits: int = 1) -> str:
    """A share as "97.4%", or "-" when missing or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.{digits}f}%"


def modality_label(modality: str, results: dict) -> str:
    """The modality's name, marked "(simulated)" when its data is simulated."""
    return modality + (" (simulated)" if modality in results.get("simulated", ()) else "")


def format_table(results: dict) -> str:
    """The result tables the main job prints: per modality, then R@1 for every pair."""
    anchor = results.get("anchor", "anchor")
    lines = [f"zero-shot classification (chance {percent((results['rows'] or [{}])[0].get('chance'))}); "
             f"bound = best of linear probe and same-size supervised encoder"]
    head = (f"{'split':6s} {'modality':22s} {'n':>6s} {'zero-shot':>9s} {'probe':>7s} {'superv.':>7s} "
            f"{'zs/bound':>8s} {'R@1->' + anchor:>12s}")
    lines += [head, "-" * len(head)]
    for row in results["rows"]:
        r1 = "(anchor)" if row["modality"] == anchor else percent(row.get("R@1_to_anchor"))
        lines.append(f"{row['split']:6s} {modality_label(row['modality'], results):22s} {row['n']:6d} "
                     f"{percent(row.get('zero_shot')):>9s} {percent(row.get('linear_probe')):>7s} "
                     f"{percent(row.get('supervised')):>7s} {percent(row.get('zero_shot_of_bound')):>8s} {r1:>12s}")
    matrix = r1_matrix(results)
    if matrix["queries"]:
        lines += ["", f"retrieval R@1 ({results.get('split', 'test')} galleries); rows: query, columns: gallery; "
                      f"* = emergent (never trained together)"]
        width = max(8, *(len(g) + 1 for g in matrix["galleries"]))
        lines.append(" " * 16 + "".join(f"{g:>{width}s}" for g in matrix["galleries"]))
        for (label, cells) in zip(matrix["queries"], matrix["cells"]):
            text = "".join(f"{'-' if c is None else ('*' if c[1] == 'emergent' else '') + percent(c[0]):>{width}s}"
                           for c in cells)
            lines.append(f"{label:16s}{text}")
    lines += gap_lines(results)
    grouped = [row for row in results["rows"] if row.get("groups") and "zero_shot" in row]
    if grouped:
        lines += ["", "zero-shot by group"]
    for row in grouped:
        for field, values in row["groups"].items():
            parts = [f"{v} {percent(s.get('zero_shot'))} (n={s['n']})" for v, s in values.items()]
            lines.append(f"  {row['split']} {row['modality']} by {field}: " + "; ".join(parts))
    return "\n".join(lines)


def gap_lines(results: dict) -> list[str]:
    """The modality gap per bound modality (mmbind.evaluation.gap), as lines for the table."""
    gaps = results.get("modality_gap") or []
    if not gaps:
        return []
    anchor = results.get("anchor", "anchor")
    lines = ["", f"modality gap to {anchor}: centroid distance (0 = same centre); share of the k nearest "
                 f"neighbours of its own modality (mixed = perfectly mixed with {anchor})"]
    for g in gaps:
        share = (f"{percent(g['own_neighbour_share'])} own (mixed {percent(g['mixed_share'])}, k={g['k']}, "
                 f"n={g['n']})" if "own_neighbour_share" in g else "too few samples")
        tau = "" if g.get("temperature") is None else f", tau {g['temperature']:.4f}"
        lines.append(f"  {g['split']} {modality_label(g['modality'], results)}: centroid distance "
                     f"{g['centroid_distance']:.3f}; {share}{tau}")
    return lines


def r1_matrix(results: dict, k: int = 1) -> dict[str, Any]:
    """R@k as a matrix: rows are (split, query) labels, columns galleries; cells (value, kind) or None."""
    galleries = [m for m in results.get("modalities", []) if any(r["gallery"] == m for r in results["retrieval"])]
    galleries = galleries or sorted({r["gallery"] for r in results["retrieval"]})
    queries: list[tuple[str, str]] = []
    for r in results["retrieval"]:
        if (r["split"], r["query"]) not in queries:
            queries.append((r["split"], r["query"]))
    lookup = {(r["split"], r["query"], r["gallery"]): r for r in results["retrieval"]}
    cells = []
    for split, q in queries:
        row = []
        for g in galleries:
            r = lookup.get((split, q, g))
            row.append(None if r is None or f"R@{k}" not in r else (r[f"R@{k}"], r["kind"]))
        cells.append(row)
    main = results.get("split")
    labels = [q if s == main else f"{q} ({s})" for s, q in queries]
    return {"queries": labels, "galleries": galleries, "cells": cells}


def flatten_metrics(results: dict) -> dict[str, float]:
    """Every number of an eval.json under a stable name, e.g. "test/audio zero_shot",
    "test audio->text R@1", "real/audio language=en zero_shot"."""
    flat: dict[str, float] = {}
    for row in results.get("rows", []):
        prefix = f"{row['split']}/{row['modality']}"
        for key in ("zero_shot", "linear_probe", "supervised", "supervised_bound", "zero_shot_of_bound"):
            if isinstance(row.get(key), (int, float)):
                flat[f"{prefix} {key}"] = float(row[key])
        for field, values in row.get("groups", {}).items():
            for value, scores in values.items():
                for key, score in scores.items():
                    if key != "n":
                        flat[f"{prefix} {field}={value} {key}"] = float(score)
    for g in results.get("modality_gap", []):
        for key in ("centroid_distance", "own_neighbour_share"):
            if key in g:
                flat[f"{g['split']}/{g['modality']} gap {key}"] = float(g[key])
    for r in results.get("retrieval", []):
        for key, value in r.items():
            if key.startswith("R@"):
                flat[f"{r['split']} {r['query']}->{r['gallery']} {key}"] = float(value)
    return flat


def format_comparison(a: dict, b: dict, name_a: str = "A", name_b: str = "B") -> str:
    """Both runs' values and the difference (B - A) per metric, in percentage points (distances: plain)."""
    lines = []
    for key in ("recipe", "seed", "dataset", "fingerprint"):
        if a.get(key) != b.get(key):
            lines.append(f"{key}: {name_a}={a.get(key)!r}  {name_b}={b.get(key)!r}")
    va, vb = a.get("versions", {}), b.get("versions", {})
    for key in sorted(set(va) | set(vb)):
        if va.get(key) != vb.get(key):
            lines.append(f"version {key}: {name_a}={va.get(key)}  {name_b}={vb.get(key)}")
    if a.get("data_sizes") != b.get("data_sizes"):
        lines.append("data sizes differ: the numbers below are not on the same samples")
    fa, fb = flatten_metrics(a), flatten_metrics(b)
    keys = list(dict.fromkeys([*fa, *fb]))
    width = max([len("metric"), *map(len, keys)])
    head = f"{'metric':{width}s} {name_a[:10]:>10s} {name_b[:10]:>10s} {'diff':>8s}"
    lines += ["" if lines else None, head, "-" * len(head)]
    for key in keys:
        x, y = fa.get(key), fb.get(key)
        share = not key.endswith("centroid_distance")  # a distance prints as itself, not as a percentage
        show = percent if share else (lambda v: "-" if v is None or math.isnan(v) else f"{v:.3f}")
        diff = ("-" if x is None or y is None or math.isnan(x) or math.isnan(y)
                else f"{100 * (y - x):+.1f}" if share else f"{y - x:+.3f}")
        lines.append(f"{key:{width}s} {show(x):>10s} {show(y):>10s} {diff:>8s}")
    return "\n".join(line for line in lines if line is not None)
