"""The main job: train, evaluate, embed and report, each stage writing into the run folder."""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Callable

from mmbind.plugin.specs import BindingData
from mmbind.recipe import Recipe

if TYPE_CHECKING:
    from mmbind.binder import Binder


def train_recipe(recipe: Recipe, resume: bool = False, data: BindingData | None = None,
                 overwrite: bool = False, timing: dict[str, float] | None = None) -> tuple["Binder", BindingData]:
    """Run the training stages; returns the trained Binder and the data it was trained on.
    A run folder holding an earlier run is refused unless ``resume`` or ``overwrite``, and one
    another process trains in is refused (RunFolderError), before anything is written.
    ``timing``, if given, gets the stages' wall seconds (data_seconds, pretrain_seconds, bind_seconds)."""
    from mmbind.training.checkpoints import RunFolder
    from mmbind.training.trainer import Trainer

    run = RunFolder(recipe.run_dir)
    with run.lock():
        run.check_free(resume, overwrite)
        trainer = Trainer(recipe, data=data)
        recipe.run_dir.mkdir(parents=True, exist_ok=True)
        # The recipe as it runs (--set overrides applied), which `mmbind eval RUN` reads back.
        (recipe.run_dir / "recipe.toml").write_text(recipe.to_toml())
        binder = trainer.fit(resume=resume, overwrite=overwrite)
    if timing is not None:
        timing.update(trainer.timing)
    return binder, trainer.data


def run_recipe(recipe: Recipe, resume: bool = False, echo: Callable[[str], None] = print,
               overwrite: bool = False) -> dict[str, Any]:
    """Every stage of a recipe; prints the result table and where the report is. The run
    folder is locked throughout; the embed stage replaces only the collections it wrote.
    The results' "timing" has each stage's wall seconds (data, pretrain, bind, train, eval,
    embed, total, report)."""
    from mmbind.training.checkpoints import RunFolder

    with RunFolder(recipe.run_dir).lock():
        return _run_stages(recipe, resume, echo, overwrite)


def _run_stages(recipe: Recipe, resume: bool, echo: Callable[[str], None], overwrite: bool) -> dict[str, Any]:
    from mmbind.evaluation.report import write_report
    from mmbind.evaluation.results import format_table
    from mmbind.evaluation.run import evaluate_run
    from mmbind.store.ingest import check_stage_store, embed_split
    from mmbind.tracking import tracking

    check_stage_store(recipe)  # before training: refuse a store the embed stage would have to mix into
    started = time.perf_counter()
    timing: dict[str, float] = {}
    with tracking(recipe, recipe.run_dir):  # one tracker run for training and evaluation
        binder, data = train_recipe(recipe, resume=resume, overwrite=overwrite, timing=timing)
        trained = time.perf_counter()
        timing["train_seconds"] = round(trained - started, 1)
        results = evaluate_run(binder, data, recipe)
    evaluated = time.perf_counter()
    timing["eval_seconds"] = round(evaluated - trained, 1)
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
