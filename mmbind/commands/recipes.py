"""`mmbind train` and `mmbind run`: the recipe stages."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click

from mmbind.commands.options import device_option

if TYPE_CHECKING:
    from mmbind.recipe import Recipe


def _load(recipe_path: str, overrides: tuple[str, ...], device: str | None = None,
          threads: int | None = None) -> "Recipe":
    from mmbind.recipe import load_recipe, parse_assignments

    assignments = parse_assignments(overrides, "--set")
    if device is not None:
        assignments["device"] = device
    if threads is not None:
        assignments["threads"] = threads
    return load_recipe(recipe_path, assignments)  # a RecipeError is a UserError


_device = device_option(None, "Where training runs (default: the recipe's device, which defaults to auto): "
                                "auto, cpu, cuda, cuda:N or mps.")
_set = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                    help="Override a recipe field, e.g. --set bind.epochs=2 (repeatable).")
_threads = click.option("--threads", type=click.IntRange(min=0), default=None,
                        help="torch's intra-op CPU threads (the recipe's threads; 0: the cores "
                             "free to this process, see docs/performance.md).")


_overwrite = click.option("--overwrite", is_flag=True,
                          help="Replace an earlier run in the run folder (kept until the new run's first checkpoint).")


def register(cli: click.Group) -> None:
    @cli.command()
    @click.argument("recipe", type=click.Path(dir_okay=False))
    @click.option("--resume", is_flag=True, help="Continue from the run's last epoch checkpoint.")
    @_overwrite
    @_set
    @_device
    @_threads
    def train(recipe: str, resume: bool, overwrite: bool, overrides: tuple[str, ...], device: str | None,
              threads: int | None) -> None:
        """Pretrain the anchor (if the recipe asks) and bind every modality."""
        from mmbind.pipeline import train_recipe

        train_recipe(_load(recipe, overrides, device, threads), resume=resume, overwrite=overwrite)

    @cli.command()
    @click.argument("recipe", type=click.Path(dir_okay=False))
    @click.option("--resume", is_flag=True, help="Continue training from the last checkpoint.")
    @_overwrite
    @_set
    @_device
    @_threads
    def run(recipe: str, resume: bool, overwrite: bool, overrides: tuple[str, ...], device: str | None,
            threads: int | None) -> None:
        """Run every stage of RECIPE: train, evaluate, embed, report; print the result table."""
        from mmbind.pipeline import run_recipe

        run_recipe(_load(recipe, overrides, device, threads), resume=resume, overwrite=overwrite)
