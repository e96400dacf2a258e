"""`mmbind eval`, `mmbind report` and `mmbind compare`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mmbind.commands.options import device_option

if TYPE_CHECKING:
    from mmbind.binder import Binder
    from mmbind.recipe import EvalConfig, Recipe


# `mmbind eval` options that set a field of the recipe's [eval] table.
EVAL_OPTIONS = {"split": "--split", "extra_splits": "--extra-split", "templates": "--template",
                "text_modality": "--text-modality", "supervised_baselines": "--supervised",
                "supervised_budget_seconds": "--baseline-budget"}


def set_eval_fields(eval_cfg: "EvalConfig", settings: dict[str, Any]) -> None:
    """Assign command-line settings to an [eval] table, each validated as the recipe's own."""
    from pydantic import ValidationError

    from mmbind.recipe.errors import problems

    for name, value in settings.items():
        try:
            setattr(eval_cfg, name, value)
        except ValidationError as error:
            message = "; ".join(p.message for p in problems(error, type(eval_cfg)))
            raise click.BadParameter(message, param_hint=EVAL_OPTIONS[name]) from None


def resolve_checkpoint(path: Path) -> tuple[Path, Path | None, Path]:
    """(model folder, run folder or None, where eval.json goes) for a run folder, its model/
    folder or an epoch checkpoint folder."""
    if (path / "config.json").is_file():
        model = path
    elif (path / "model" / "config.json").is_file():
        model = path / "model"
    else:
        raise click.ClickException(f"{path}: not a checkpoint: expected a folder with config.json "
                                   "(a model/ or checkpoints/epoch-NNNN folder) or a run folder with model/")
    run = next((p for p in (model.parent, model.parent.parent)
                if (p / "recipe.toml").is_file() or (p / "metrics.jsonl").is_file()), None)
    # The run's final model reports beside the run (as the pipeline does); an epoch checkpoint inside itself.
    output = run / "eval.json" if run is not None and model == run / "model" else model / "eval.json"
    return model, run, output


def build_recipe(binder: "Binder", data: str | None, options: dict[str, Any], run: Path | None,
                 output: Path) -> "Recipe":
    """The Recipe that evaluate_run needs: from a recipe file, from the run's recipe.toml, or built
    from a dataset name and the checkpoint's own towers."""
    from mmbind.recipe import EvalConfig, Recipe, load_recipe

    run_recipe = run / "recipe.toml" if run is not None and (run / "recipe.toml").is_file() else None
    dataset_options = {f"data.options.{k}": v for k, v in options.items()}
    if data is not None and is_recipe(data):
        recipe = load_recipe(data, dataset_options)
    elif data is None:
        if run_recipe is None:
            raise click.ClickException("no --data given and no recipe.toml in the run folder: "
                                       "pass --data DATASET (see `mmbind list datasets`) or --data RECIPE.toml")
        recipe = load_recipe(run_recipe, dataset_options)
    else:
        base = load_recipe(run_recipe) if run_recipe is not None else None
        recipe = Recipe(name=base.name if base else output.resolve().parent.name or "eval", dataset=data,
                        anchor=binder.anchor_modality, towers=binder.config.towers, dataset_options=options,
                        seed=base.seed if base else 0, eval=base.eval if base else EvalConfig(),
                        raw={"data": {"dataset": data, "options": options}})
    recipe.output_dir = str(output.parent)
    return recipe


def is_recipe(data: str) -> bool:
    return data.endswith(".toml") or Path(data).is_file()


def check_dataset(name: str, options: dict[str, Any]) -> None:
    """--data DATASET and its --option values, checked as a recipe's [data] table is."""
    import mmbind
    from mmbind.recipe import RecipeError
    from mmbind.recipe.factories import Factory, option_problems

    try:
        spec = mmbind.get_dataset(name)
    except KeyError as error:
        raise click.ClickException(f"--data {name!r}: {error}") from None
    problems = option_problems(Factory(spec.factory, f"dataset {name!r}"), options)
    if problems:
        raise RecipeError("\n".join(f"--option: {problem}" for problem in problems))


def find_results(path: str) -> dict:
    """An eval.json given directly, or the one in a run folder or checkpoint folder."""
    p = Path(path)
    candidates = [p] if p.is_file() else [p / "eval.json", p / "model" / "eval.json"]
    for candidate in candidates:
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text())
            except json.JSONDecodeError as error:
                raise click.ClickException(f"{candidate}: not valid JSON ({error})") from None
    raise click.ClickException(f"{path}: no eval.json found (expected a run folder, a checkpoint folder "
                               "evaluated with `mmbind eval`, or an eval.json file)")


def register(cli: click.Group) -> None:
    @cli.command(name="eval")
    @click.argument("checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option("--data", metavar="DATASET|RECIPE",
                  help="A dataset name, or a recipe .toml to take the dataset and [eval] settings from "
                       "(default: the run's recipe.toml).")
    @click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="A dataset option (repeatable).")
    @click.option("--split", help="The split to evaluate (default: the recipe's [eval] split).")
    @click.option("--extra-split", "extra_splits", multiple=True,
                  help="Another split to evaluate against the main split's galleries, e.g. real (repeatable).")
    @click.option("--template", "templates", multiple=True,
                  help='A zero-shot prompt template with {} for the class name (repeatable).')
    @click.option("--text-modality", help="The tower whose prompts define the classes (default: the recipe's text_modality, "
                       "else the binder's language tower).")
    @click.option("--supervised/--no-supervised", default=None,
                  help="Train the supervised baselines (default: the recipe's supervised_baselines).")
    @click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
                  help="Where to write the JSON (default: eval.json beside the checkpoint).")
    @click.option("--baseline-budget", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
                  help="Wall seconds for all supervised encoders together (the recipe's "
                       "[eval] supervised_budget_seconds; 0: no total cap). Cached baselines cost none.")
    @click.option("--threads", type=click.IntRange(min=0), default=None,
                  help="CPU threads (the recipe's threads; 0: the cores free to this process).")
    @device_option()
    def eval_(checkpoint: Path, data: str | None, options: tuple[str, ...], split: str | None,
              extra_splits: tuple[str, ...], templates: tuple[str, ...], text_modality: str | None,
              supervised: bool | None, output: Path | None, baseline_budget: float | None,
              threads: int | None, device: str) -> None:
        """Zero-shot accuracy, retrieval R@K for every modality pair and supervised bounds of CHECKPOINT."""
        import time

        from mmbind.binder import Binder
        from mmbind.devices import resolve_device
        from mmbind.evaluation.results import format_table
        from mmbind.evaluation.run import evaluate_run
        from mmbind.recipe import EvalConfig, parse_assignments
        from mmbind.threads import apply_threads

        model, run, default_output = resolve_checkpoint(checkpoint)
        output = output or default_output
        settings = {"split": split, "extra_splits": list(extra_splits), "templates": list(templates),
                    "text_modality": text_modality, "supervised_baselines": supervised,
                    "supervised_budget_seconds": baseline_budget}
        settings = {name: value for name, value in settings.items() if value is not None and value != []}
        set_eval_fields(EvalConfig(), settings)  # a bad option fails now, before the binder loads
        dataset_options = parse_assignments(options, "--option")
        if data is not None and not is_recipe(data):
            check_dataset(data, dataset_options)  # before the binder loads
        started = time.perf_counter()
        binder = Binder.from_pretrained(model, device=resolve_device(device))
        recipe = build_recipe(binder, data, dataset_options, run, output)
        set_eval_fields(recipe.eval, settings)
        if threads is not None:
            recipe.threads = threads
        apply_threads(recipe.threads)
        dataset = recipe.load_data()
        try:
            results = evaluate_run(binder, dataset, recipe, run_dir=output.parent)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
        results["checkpoint"] = str(model)
        results["timing"] = {"total_seconds": round(time.perf_counter() - started, 1)}
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2, default=str) + "\n")
        click.echo(format_table(results))
        click.echo(f"\nresults: {output}")

    @cli.command()
    @click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option("--projection", type=click.Choice(["umap", "pca"]), default="umap", show_default=True,
                  help="How the joint-space picture is projected to 2-D (pca is instant, umap shows clusters).")
    @click.option("--output", type=click.Path(file_okay=False, path_type=Path),
                  help="Folder for report.md and the figures (default: RUN/report).")
    def report(run: Path, projection: str, output: Path | None) -> None:
        """Write report.md and PNG figures from the files of RUN (eval.json, metrics.jsonl, embeddings)."""
        from mmbind.evaluation.report import write_report

        try:
            path = write_report(run, projection=projection, output=output)
        except (FileNotFoundError, ValueError) as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"report: {path}")

    @cli.command()
    @click.argument("run_a")
    @click.argument("run_b")
    def compare(run_a: str, run_b: str) -> None:
        """Print every metric of two evaluated runs side by side with the difference (B - A, points)."""
        from mmbind.evaluation.results import format_comparison

        a, b = find_results(run_a), find_results(run_b)
        click.echo(f"A = {run_a}\nB = {run_b}")
        click.echo(format_comparison(a, b))
