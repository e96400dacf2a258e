"""`mmbind eval`, `mmbind report` and `mmbind compare`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def parse_assignments(items: tuple[str, ...], option: str) -> dict[str, Any]:
    """KEY=VALUE pairs with TOML values (a bare word is a string)."""
    import tomllib

    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint=option)
        try:
            parsed[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed[key] = value
    return parsed


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


def build_recipe(binder, data: str | None, options: dict[str, Any], run: Path | None, output: Path):
    """The Recipe that evaluate_run needs: from a recipe file, from the run's recipe.toml, or built
    from a dataset name and the checkpoint's own towers."""
    from mmbind.recipe import EvalConfig, Recipe, RecipeError, load_recipe

    run_recipe = run / "recipe.toml" if run is not None and (run / "recipe.toml").is_file() else None
    try:
        if data is not None and (data.endswith(".toml") or Path(data).is_file()):
            recipe = load_recipe(data, {f"data.options.{k}": v for k, v in options.items()})
        elif data is None:
            if run_recipe is None:
                raise click.ClickException("no --data given and no recipe.toml in the run folder: "
                                           "pass --data DATASET (see `mmbind list datasets`) or --data RECIPE.toml")
            recipe = load_recipe(run_recipe, {f"data.options.{k}": v for k, v in options.items()})
        else:
            base = load_recipe(run_recipe) if run_recipe is not None else None
            import mmbind

            try:
                mmbind.get_dataset(data)
            except KeyError as error:
                raise click.ClickException(f"--data {data!r}: {error.args[0]}") from None
            eval_cfg = EvalConfig(**vars(base.eval)) if base is not None else EvalConfig()
            recipe = Recipe(name=base.name if base else output.parent.name, dataset=data, anchor=binder.anchor_modality,
                            towers=binder.config.towers, dataset_options=options, seed=base.seed if base else 0,
                            eval=eval_cfg, raw={"data": {"dataset": data, "options": options}})
    except RecipeError as error:
        raise click.ClickException(str(error)) from None
    recipe.output_dir = str(output.parent)
    return recipe


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
    @click.option("--text-modality", help="The tower whose prompts define the classes (default: text).")
    @click.option("--supervised/--no-supervised", default=None,
                  help="Train the supervised baselines (default: the recipe's supervised_baselines).")
    @click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
                  help="Where to write the JSON (default: eval.json beside the checkpoint).")
    @click.option("--baseline-budget", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
                  help="Wall seconds for all supervised encoders together (the recipe's "
                       "[eval] supervised_budget_seconds; 0: no total cap). Cached baselines cost none.")
    @click.option("--threads", type=click.IntRange(min=0), default=None,
                  help="CPU threads (the recipe's threads; 0: the cores free to this process).")
    @click.option("--device", default=None, help="torch device, e.g. cpu or cuda:0.")
    def eval_(checkpoint: Path, data: str | None, options: tuple[str, ...], split: str | None,
              extra_splits: tuple[str, ...], templates: tuple[str, ...], text_modality: str | None,
              supervised: bool | None, output: Path | None, baseline_budget: float | None,
              threads: int | None, device: str | None) -> None:
        """Zero-shot accuracy, retrieval R@K for every modality pair and supervised bounds of CHECKPOINT."""
        import time

        import mmbind
        from mmbind.binder import Binder
        from mmbind.evaluation.results import format_table
        from mmbind.evaluation.run import evaluate_run
        from mmbind.threads import apply_threads

        model, run, default_output = resolve_checkpoint(checkpoint)
        output = output or default_output
        for template in templates:
            if "{}" not in template:
                raise click.BadParameter(f"{template!r} has no '{{}}' for the class name", param_hint="--template")
        started = time.perf_counter()
        binder = Binder.from_pretrained(model, device=device)
        recipe = build_recipe(binder, data, parse_assignments(options, "--option"), run, output)
        if split:
            recipe.eval.split = split
        if extra_splits:
            recipe.eval.extra_splits = list(extra_splits)
        if templates:
            recipe.eval.templates = list(templates)
        if supervised is not None:
            recipe.eval.supervised_baselines = supervised
        if baseline_budget is not None:
            recipe.eval.supervised_budget_seconds = baseline_budget
        if threads is not None:
            recipe.threads = threads
        apply_threads(recipe.threads)
        dataset = mmbind.load_dataset(recipe.dataset, **recipe.dataset_options)
        try:
            results = evaluate_run(binder, dataset, recipe, prompt_tower=text_modality, run_dir=output.parent)
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
