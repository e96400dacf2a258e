"""benchmarks/quality.py on a locked-image-tuning recipe (recipes/fashion.toml): its targets and markdown."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _benchmark():
    spec = importlib.util.spec_from_file_location("quality_lit", ROOT / "benchmarks" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(seed: int, zero_shot: float, probe: float, seconds: float) -> dict:
    return {
        "recipe": "fashion", "seed": seed, "dataset": "fashion-mnist", "anchor": "image", "split": "test",
        "simulated": [], "fingerprint": f"f{seed}", "timing": {"benchmark_seconds": seconds},
        "rows": [{"split": "test", "modality": "image", "n": 10000, "zero_shot": zero_shot,
                  "linear_probe": probe, "supervised": 0.1, "zero_shot_of_bound": zero_shot / probe},
                 {"split": "test", "modality": "text", "n": 60, "zero_shot": 1.0}],
        "retrieval": [{"split": "test", "query": "text", "gallery": "image", "kind": "paired",
                       "R@1": 0.95, "R@5": 0.98, "R@10": 1.0}],
    }


def test_lit_targets_ratio_and_wall_time():
    quality = _benchmark()
    runs = [_run(0, 0.81, 0.90, 600), _run(1, 0.82, 0.90, 700), _run(2, 0.80, 0.90, 1200)]
    targets = quality.check_lit_targets(runs)
    ratio, seconds = targets
    assert ratio["values"] == pytest.approx([0.9, 0.82 / 0.9, 0.8 / 0.9])
    assert ratio["status"] == "PASS" and ratio["seeds_passing"] == 2
    assert seconds["stats"]["mean"] == pytest.approx(833.3, abs=0.1)
    assert seconds["status"] == "PASS" and seconds["seeds_passing"] == 2  # 1200 s > 900 s
    runs[0]["rows"][0]["zero_shot"] = 0.5
    assert quality.check_lit_targets(runs)[0]["status"] == "MISS"
    runs[1]["timing"]["stages"] = "train, eval"  # an --eval-only run does not measure the whole recipe
    seconds = quality.check_lit_targets(runs)[1]
    assert seconds["status"] == "NOT MEASURED" and "only the stages all; train, eval ran" in seconds["detail"]


def test_lit_results_markdown_from_runs(tmp_path):
    quality = _benchmark()
    folders = []
    for seed in (0, 1):
        folder = tmp_path / f"quality-seed{seed}"
        folder.mkdir()
        (folder / "eval.json").write_text(json.dumps(_run(seed, 0.85, 0.90, 500)))
        folders.append(str(folder))
    out = tmp_path / "results.md"
    assert quality.main(["--from-runs", *folders, "--results", str(out)]) == 0  # recipe 'fashion': lit targets
    text = out.read_text()
    assert "zero-shot accuracy / linear-probe accuracy, test split, image (anchor)" in text
    assert "| ≥ 0.90 | 0.944 ± 0.000 (0.944–0.944) | 0.944, 0.944 | 2/2 | **PASS** |" in text
    assert "| ≤ 900 s | 500 s ± 0 (500–500) | 500 s, 500 s | 2/2 | **PASS** |" in text
    assert "| text → image | paired | 95.0% ± 0.0 (95.0–95.0) | 95.0%, 95.0% | 98.0% ± 0.0 (98.0–98.0) |" in text
