"""recipes/imagebind-extend.toml, run on a small random ImageBind import: a modality ImageBind
lacks (the digits world's 8x8 scans) is bound to its frozen vision tower, and its emergent
zero-shot accuracy through ImageBind's text tower is evaluated and printed. With a random
import the accuracy is near chance; the test checks the run, not the score."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

import imagebind_reference as ib
from mmbind import Binder
from mmbind.evaluation.results import format_table
from mmbind.evaluation.run import evaluate_run
from mmbind.pipeline import train_recipe
from mmbind.recipe import load_recipe

RECIPE = Path(__file__).parent.parent / "recipes" / "imagebind-extend.toml"


def test_imagebind_extend_recipe_binds_scans_and_scores_them_zero_shot(small_digits_world, tmp_path, capsys):
    base = ib.small_import(tmp_path / "imports" / "imagebind", modalities=("vision", "text"))
    recipe = load_recipe(RECIPE, {"base": str(base), "output_dir": str(tmp_path / "run"),
                                  "data.options": small_digits_world, "bind.epochs": 1, "bind.steps_per_epoch": 4,
                                  "bind.batch_size": 16, "eval.supervised_epochs": 1})
    assert recipe.bound == ["digits"] and list(recipe.binder_config().towers) == ["image", "text", "digits"]
    trained, data = train_recipe(recipe)  # `mmbind run` without the store and the report
    results = evaluate_run(trained, data, recipe)

    rows = {(r["split"], r["modality"]): r for r in results["rows"]}
    scans = rows["test", "digits"]
    assert results["text_modality"] == "text" and 0.0 <= scans["zero_shot"] <= 1.0 and scans["chance"] == 0.1
    pairs = {(r["query"], r["gallery"]): r["kind"] for r in results["retrieval"]}
    assert pairs["digits", "image"] == "paired" and pairs["digits", "text"] == "emergent"
    with capsys.disabled():
        print("\n" + format_table(results))
        print(f"imagebind-extend on a random small import: emergent zero-shot of the scans through ImageBind's "
              f"text tower {scans['zero_shot']:.3f} (chance {scans['chance']:.2f}); images {rows['test', 'image']['zero_shot']:.3f}")

    model = tmp_path / "run" / "model"
    with safe_open(str(model / "model.safetensors"), "pt") as weights:
        assert {key.split(".")[1] for key in weights.keys()} == {"digits"}  # ImageBind's towers stay in the base
    assert json.loads((model / "config.json").read_text())["base"]["path"] == str(base.resolve())
    binder = Binder.from_pretrained(model)
    probabilities = binder.zero_shot(small_digits_world_scans(recipe), [str(d) for d in range(10)],
                                     modality="digits", templates=recipe.eval.templates)
    assert probabilities.shape == (3, 10) and abs(probabilities.sum(axis=1) - 1).max() < 1e-5


def small_digits_world_scans(recipe) -> list:
    import mmbind

    return list(mmbind.load_dataset(recipe.dataset, **recipe.dataset_options).splits["test"]["digits"].inputs[:3])
