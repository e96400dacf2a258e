"""`mmbind train` and `mmbind run`: the recipe stages."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from mmbind.recipe import Recipe


def _load(recipe_path: str, overrides: tuple[str, ...]) -> "Recipe":
    from mmbind.recipe import load_recipe, parse_assignments

    return load_recipe(recipe_path, parse_assignments(overrides, "--set"))  # a RecipeError is a UserError


_set = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                    help="Override a recipe field, e.g. --set bind.epochs=2 (repeatable).")


_overwrite = click.option("--overwrite", is_flag=True,
                          help="Replace an earlier run in the run folder (kept until the new run's first checkpoint).")


def register(cli: click.Group) -> None:
    @cli.command()
    @click.argument("recipe", type=click.Path(dir_okay=False))
    @click.option("--resume", is_flag=True, help="Continue from the run's last epoch checkpoint.")
    @_overwrite
    @_set
    def train(recipe: str, resume: bool, overwrite: bool, overrides: tuple[str, ...]) -> None:
        """Pretrain the anchor (if the recipe asks) and bind every modality."""
        from mmbind.pipeline import train_recipe

        train_recipe(_load(recipe, overrides), resume=resume, overwrite=overwrite)

    @cli.command()
    @click.argument("recipe", type=click.Path(dir_okay=False))
    @click.option("--resume", is_flag=True, help="Continue training from the last checkpoint.")
    @_overwrite
    @_set
    def run(recipe: str, resume: bool, overwrite: bool, overrides: tuple[str, ...]) -> None:
        """Run every stage of RECIPE: train, evaluate, embed, report; print the result table."""
        from mmbind.pipeline import run_recipe

        run_recipe(_load(recipe, overrides), resume=resume, overwrite=overwrite)
