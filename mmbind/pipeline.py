"""The main job: train, evaluate, embed and report, each stage writing into the run folder."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from mmbind.plugin.specs import BindingData
from mmbind.recipe import Recipe

if TYPE_CHECKING:
    from mmbind.binder import Binder


def train_recipe(recipe: Recipe, resume: bool = False,
                 data: BindingData | None = None) -> tuple["Binder", BindingData]:
    """Run the training stages; returns the trained Binder and the data it was trained on."""
    from mmbind.training.trainer import Trainer

    trainer = Trainer(recipe, data=data)
    recipe.run_dir.mkdir(parents=True, exist_ok=True)
    if recipe.source and Path(recipe.source).is_file():
        shutil.copyfile(recipe.source, recipe.run_dir / "recipe.toml")
    return trainer.fit(resume=resume), trainer.data


def run_recipe(recipe: Recipe, resume: bool = False, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Every stage of a recipe; prints the result table and where the report is."""
    from mmbind.evaluation.results import format_table
    from mmbind.evaluation.run import evaluate_run

    started = time.perf_counter()
    binder, data = train_recipe(recipe, resume=resume)
    trained = time.perf_counter()
    results = evaluate_run(binder, data, recipe)
    results["timing"] = {"train_seconds": round(trained - started, 1)}
    from mmbind.store.ingest import embed_split

    if not resume:  # vectors of an earlier model in this run folder are stale
        (recipe.run_dir / recipe.embed.store).unlink(missing_ok=True)
    store_path = embed_split(binder, data, recipe)
    results["timing"]["total_seconds"] = round(time.perf_counter() - started, 1)
    (recipe.run_dir / "eval.json").write_text(json.dumps(results, indent=2) + "\n")
    echo(format_table(results))
    echo(f"\nembeddings: {store_path}")
    from mmbind.evaluation.report import write_report

    report = write_report(recipe.run_dir)
    echo(f"report: {report}")
    return results
