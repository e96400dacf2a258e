"""``mmbind shards write RECIPE_OR_DATASET OUT/``."""
from __future__ import annotations

import click

from mmbind_plugins.shards import SHARD_SIZE


@click.group()
def shards() -> None:
    """WebDataset tar shards: stream training data larger than memory."""


@shards.command()
@click.argument("source")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--anchor", help="The anchor modality (default: the recipe's; needed with a dataset name).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A dataset option, e.g. --option root=data/pairs (repeatable; with a dataset name).")
@click.option("--shard-size", default=SHARD_SIZE, show_default=True, type=click.IntRange(min=1),
              help="Samples per shard (a shard is shuffled in memory).")
@click.option("--seed", default=0, show_default=True, help="Seed of the anchor drawn for each sample.")
def write(source: str, out: str, anchor: str | None, options: tuple[str, ...], shard_size: int, seed: int) -> None:
    """Write SOURCE's splits (a recipe file's dataset, or a registered dataset's name) as shards
    in OUT; train with `[data] dataset = "webdataset"`, `options = { path = "OUT" }`."""
    import tomllib
    from pathlib import Path

    import mmbind
    from mmbind_plugins.shards.writer import write_shards

    modalities = None
    if source.endswith(".toml") or Path(source).is_file():
        from mmbind.recipe import load_recipe

        recipe = load_recipe(source)
        name, dataset_options, modalities = recipe.dataset, recipe.dataset_options, list(recipe.towers)
        anchor = anchor or recipe.anchor
    else:
        name, dataset_options = source, {}
        for item in options:
            key, sep, value = item.partition("=")
            if not sep:
                raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--option")
            try:
                dataset_options[key] = tomllib.loads(f"v = {value}")["v"]
            except tomllib.TOMLDecodeError:
                dataset_options[key] = value
    data = mmbind.load_dataset(name, **dataset_options)
    present = data.modalities()
    if anchor is None:
        raise click.UsageError(f"--anchor: which modality is the anchor? {name!r} has {', '.join(present)}")
    if anchor not in present:
        raise click.BadParameter(f"{anchor!r}: {name!r} has {', '.join(present)}", param_hint="--anchor")
    index = write_shards(data, anchor, out, shard_size, seed, modalities, source=name)
    for split, by_modality in index["splits"].items():
        for modality, entry in by_modality.items():
            click.echo(f"{split}/{modality}: {sum(entry['counts'])} samples in {len(entry['shards'])} shard(s)")
    click.echo(f"wrote {Path(out) / 'index.json'}")
