"""`mmbind run` on a tiny recipe: every stage leaves its file in the run folder."""
import json

import h5py
import numpy as np

from mmbind.pipeline import run_recipe
from test_core_training import toy_recipe


def test_run_recipe_writes_model_eval_store_and_report(toy_plugin, tmp_path):
    recipe = toy_recipe(toy_plugin, tmp_path, epochs=2)
    recipe.eval.supervised_baselines = False
    lines = []
    results = run_recipe(recipe, echo=lines.append)
    run = tmp_path / "run"
    assert (run / "model" / "model.safetensors").is_file()
    saved = json.loads((run / "eval.json").read_text())
    assert saved["timing"]["total_seconds"] > 0 and saved["seed"] == 3
    assert any("toy-b" in line for line in lines) and any("report:" in line for line in lines)
    with h5py.File(run / "embeddings.h5", "r", swmr=True) as f:
        names = set(f["collections"]) if "collections" in f else set(f)
    assert {"toy-a", "toy-b"} <= names, names
    report = run / "report" / "report.md"
    assert report.is_file() and "toy-b" in report.read_text()
    assert results["rows"] if "rows" in results else results
