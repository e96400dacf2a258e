"""`mmbind train` and `mmbind run`: the recipe stages."""
from __future__ import annotations

import click


def _load(recipe_path: str, overrides: tuple[str, ...]):
    import tomllib

    from mmbind.recipe import RecipeError, load_recipe

    parsed = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE, e.g. bind.epochs=2", param_hint="--set")
        try:
            parsed[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed[key] = value  # a bare word is a string
    try:
        return load_recipe(recipe_path, parsed)
    except RecipeError as error:
        raise click.ClickException(str(error)) from None


_set = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                    help="Override a recipe field, e.g. --set bind.epochs=2 (repeatable).")
_threads = click.option("--threads", type=click.IntRange(min=0), default=None,
                        help="CPU threads for compute and loading (the recipe's threads; 0: the cores "
                             "free to this process, see docs/performance.md).")


def _with_threads(overrides: tuple[str, ...], threads: int | None) -> tuple[str, ...]:
    return overrides if threads is None else (*overrides, f"threads={threads}")


def register(cli: click.Group) -> None:
    @cli.command()
    @click.argument("recipe", type=click.Path(dir_okay=False))
    @click.option("--resume", is_flag=True, help="Continue from the run's last epoch checkpoint.")
    @_set
    @_threads
    def train(recipe: str, resume: bool, overrides: tuple[str, ...], threads: int | None) -> None:
        """Pretrain the anchor (if the recipe asks) and bind every modality."""
        from mmbind.pipeline import train_recipe

        train_recipe(_load(recipe, _with_threads(overrides, threads)), resume=resume)

    @cli.command()
    @click.argument("recipe", type=click.Path(dir_okay=False))
    @click.option("--resume", is_flag=True, help="Continue training from the last checkpoint.")
    @_set
    @_threads
    def run(recipe: str, resume: bool, overrides: tuple[str, ...], threads: int | None) -> None:
        """Run every stage of RECIPE: train, evaluate, embed, report; print the result table."""
        from mmbind.pipeline import run_recipe

        run_recipe(_load(recipe, _with_threads(overrides, threads)), resume=resume)
