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


def train_recipe(recipe: Recipe, resume: bool = False, data: BindingData | None = None,
                 timing: dict[str, float] | None = None) -> tuple["Binder", BindingData]:
    """Run the training stages; returns the trained Binder and the data it was trained on.
    ``timing``, if given, gets the stages' wall seconds (data_seconds, pretrain_seconds, bind_seconds)."""
    from mmbind.training.trainer import Trainer

    trainer = Trainer(recipe, data=data)
    recipe.run_dir.mkdir(parents=True, exist_ok=True)
    if recipe.source and Path(recipe.source).is_file():
        shutil.copyfile(recipe.source, recipe.run_dir / "recipe.toml")
    binder = trainer.fit(resume=resume)
    if timing is not None:
        timing.update(trainer.timing)
    return binder, trainer.data


def run_recipe(recipe: Recipe, resume: bool = False, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Every stage of a recipe; prints the result table and where the report is. The results'
    "timing" has each stage's wall seconds (data, pretrain, bind, eval, embed, report, total)."""
    from mmbind.evaluation.report import write_report
    from mmbind.evaluation.results import format_table
    from mmbind.evaluation.run import evaluate_run
    from mmbind.store.ingest import embed_split

    started = time.perf_counter()
    timing: dict[str, float] = {}
    binder, data = train_recipe(recipe, resume=resume, timing=timing)
    trained = time.perf_counter()
    timing["train_seconds"] = round(trained - started, 1)
    results = evaluate_run(binder, data, recipe)
    evaluated = time.perf_counter()
    timing["eval_seconds"] = round(evaluated - trained, 1)
    if not resume:  # vectors of an earlier model in this run folder are stale
        (recipe.run_dir / recipe.embed.store).unlink(missing_ok=True)
    store_path = embed_split(binder, data, recipe)
    timing["embed_seconds"] = round(time.perf_counter() - evaluated, 1)
    timing["total_seconds"] = round(time.perf_counter() - started, 1)  # before the report, which reads this file
    results["timing"] = timing
    (recipe.run_dir / "eval.json").write_text(json.dumps(results, indent=2) + "\n")
    echo(format_table(results))
    echo(f"\nembeddings: {store_path}")
    reporting = time.perf_counter()
    report = write_report(recipe.run_dir)
    results["timing"]["report_seconds"] = round(time.perf_counter() - reporting, 1)
    echo(f"report: {report}")
    return results
