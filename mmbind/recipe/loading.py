"""Reading a recipe: the TOML file, command-line overrides, the schema, then plugin names.

Everything is checked here, before any work starts; errors name the file, the table and field,
what is allowed and, for names, the closest match.
"""
from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any, Callable, Iterable

from pydantic import ValidationError

import mmbind
from mmbind.errors import UserError
from mmbind.recipe.errors import RecipeError, did_you_mean, problems
from mmbind.recipe.factories import Factory, call_problems, option_problems
from mmbind.recipe.schema import Recipe, RecipeFile, TowerTable
from mmbind.recipe.towers import BinderConfig, TowerConfig

# What a tower taken from a base binder keeps: its weights are the base's.
FROM_BASE = ("encoder", "options", "head")

Key = tuple[str, ...]


def parse_assignments(items: Iterable[str], option: str) -> dict[str, Any]:
    """KEY=VALUE pairs (``--set bind.epochs=2``, ``--option n_per_class=5``) -> {KEY: value}.
    VALUE is read as a TOML value; a bare word that is not one is a string."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RecipeError(f"{option} {item!r}: expected KEY=VALUE (VALUE in TOML, or a bare word)")
        try:
            parsed[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed[key] = value
    return parsed


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any], source: str) -> dict[str, Any]:
    """A copy of ``data`` with each dotted key of ``overrides`` ("bind.epochs") set."""
    data = copy.deepcopy(data)
    for dotted, value in overrides.items():
        table = data
        *parents, last = dotted.split(".")
        for depth, part in enumerate(parents):
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise RecipeError(f"{source}: override {dotted!r}: {'.'.join(parents[:depth + 1])} is not a table")
        table[last] = value
    return data


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read and validate a recipe file. ``overrides`` maps dotted keys ("bind.epochs") to values."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: no such recipe file")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise RecipeError(f"{path}: not valid TOML: {error}") from None
    overrides = overrides or {}
    data = apply_overrides(data, overrides, str(path))
    return _parse(data, str(path), [tuple(key.split(".")) for key in overrides])


def parse_recipe(data: dict[str, Any], source: str = "<recipe>") -> Recipe:
    """Validate a recipe's tables (as read from TOML) and resolve plugin names."""
    return _parse(data, source, [])


def _parse(data: dict[str, Any], source: str, overridden: list[Key]) -> Recipe:
    try:
        file = RecipeFile.model_validate(data)
    except ValidationError as error:
        lines = []
        for problem in problems(error, RecipeFile):
            by_override = any(problem.location[:len(key)] == key for key in overridden)
            lines.append(problem.describe(source) + (" (from an override)" if by_override else ""))
        raise RecipeError("\n".join(lines)) from None
    return _Resolver(source, overridden).recipe(file, data)


class _Resolver:
    """Checks the names a recipe gives to plugins (dataset, modalities, encoders, loss) and builds the Recipe."""

    def __init__(self, source: str, overridden: list[Key] = ()):
        self.source = source
        self.overridden = overridden  # the dotted keys set by --set, so that their errors say so

    def fail(self, where: str, message: str) -> RecipeError:
        return RecipeError(f"{self.source}: {where}: {message}")

    def registered(self, lookup: Callable[[str], Any], name: str, where: str) -> Any:
        try:
            return lookup(name)
        except KeyError as error:  # the registry's message has the close matches and every name
            raise self.fail(where, str(error)) from None

    def recipe(self, file: RecipeFile, raw: dict[str, Any]) -> Recipe:
        dataset = file.data.dataset
        provided = list(self.provided(dataset, None, "[data]"))
        for number, added in enumerate(file.data.add, 1):
            more = self.provided(added.dataset, added.modalities, f"[[data.add]] #{number}")
            provided += [m for m in more if m not in provided]
        anchor = file.anchor.modality
        base = self.base(file) if file.base else None
        towers = {anchor: self.tower(file.anchor, anchor, "[anchor]", "[anchor] modality", base)}
        if not file.modalities:
            raise self.fail("[modalities]", f"bind at least one modality; {dataset!r} provides {', '.join(provided)}")
        for modality, table in file.modalities.items():
            where = f"[modalities.{modality}]"
            if modality not in provided:
                raise self.fail("[modalities]", f"unknown field {modality!r}{did_you_mean(modality, provided)} "
                                                f"(allowed: {', '.join(provided)})")
            if modality == anchor:
                raise self.fail(where, "is the anchor; the anchor is set in [anchor]")
            towers[modality] = self.tower(table, modality, where, where, base)
        if anchor not in provided:
            raise self.fail("[anchor] modality", f"dataset {dataset!r} provides {', '.join(provided)}, not {anchor!r}")
        common = {"name", "seed", "output_dir", "device", "threads", "base", "bind", "eval", "embed", "log"}
        recipe = Recipe(**file.model_dump(include=common),
                        dataset=dataset, dataset_options=file.data.options, added=file.data.add, anchor=anchor,
                        towers=towers, pretrain=file.anchor.pretrain, source=self.source, raw=raw)
        self.registered(mmbind.get_loss, recipe.bind.loss, "[bind] loss")
        self.check_options(recipe)
        return recipe

    def provided(self, dataset: str, chosen: list[str] | None, table: str) -> tuple[str, ...]:
        """The modalities that dataset ``dataset`` (named in ``table``) brings: ``chosen``, or all."""
        provided = self.registered(mmbind.get_dataset, dataset, f"{table} dataset").modalities
        if "*" in provided:  # the dataset's modalities come from the user's files
            provided = tuple(mmbind.list_modalities())
        for modality in chosen or ():
            if modality not in provided:
                raise self.fail(f"{table} modalities", f"dataset {dataset!r} has no modality {modality!r}"
                                f"{did_you_mean(modality, list(provided))} (it has: {', '.join(provided)})")
        return tuple(chosen) if chosen else provided

    def base(self, file: RecipeFile) -> BinderConfig:
        """The towers of the recipe's base binder folder, checked against [anchor]."""
        from mmbind.derived import read_config

        try:
            base = BinderConfig.from_dict(read_config(file.base), source=f"{file.base}/config.json")
        except UserError as error:
            raise self.fail("base", f"{file.base!r} is not a binder folder ({error}); import or train one first, "
                            f"e.g. `mmbind import imagebind imagebind_huge.pth --out {file.base}`") from None
        if file.anchor.modality != base.anchor:
            raise self.fail("[anchor] modality", f"the base binder's anchor is {base.anchor!r}, "
                            f"not {file.anchor.modality!r}")
        if file.anchor.pretrain is not None:
            raise self.fail("[anchor.pretrain]", "the anchor comes trained from the base binder; "
                            "remove [anchor.pretrain]")
        return base

    def tower(self, table: TowerTable, modality: str, where: str, named_at: str,
              base: BinderConfig | None = None) -> TowerConfig:
        """The tower of ``table`` (at ``where``; its modality is named at ``named_at``), its encoder
        resolved; a tower the base binder has starts from the base's."""
        spec = self.registered(mmbind.get_modality, modality, named_at)
        if base is not None and modality in base.towers:
            return self.inherited_tower(table, base.towers[modality], where)
        encoder = table.encoder or spec.default_encoder
        encodes = self.registered(mmbind.get_encoder, encoder, f"{where} encoder").modality
        if encodes != modality:
            raise self.fail(f"{where} encoder", f"{encoder!r} encodes {encodes!r}, not {modality!r}; "
                            f"encoders for {modality!r}: {', '.join(mmbind.list_encoders(modality=modality))}")
        return TowerConfig(**table.model_dump(exclude={"modality", "pretrain", "encoder"}), encoder=encoder)

    def inherited_tower(self, table: TowerTable, inherited: TowerConfig, where: str) -> TowerConfig:
        """The base's tower with the fields ``table`` sets; its weights are the base's, so what
        shapes them (encoder, options, head) cannot change."""
        from mmbind.finetune import TUNING_FIELDS

        chosen = table.model_fields_set - {"modality", "pretrain"}
        for key in sorted(chosen & set(FROM_BASE)):
            if getattr(table, key) != getattr(inherited, key):
                raise self.fail(f"{where} {key}", f"the tower comes from the base binder, whose {key} is "
                                f"{getattr(inherited, key)!r}; it cannot change (got {getattr(table, key)!r})")
        values = inherited.model_dump()
        if chosen & set(TUNING_FIELDS):  # a new choice of tuning replaces the base's
            values.update(freeze_encoder=False, train_last_blocks=0, lora={})
        values.update({key: getattr(table, key) for key in chosen})
        try:
            return TowerConfig(**values)
        except ValidationError as error:
            raise self.fail(where, "; ".join(e["msg"] for e in error.errors())) from None

    def check_options(self, recipe: Recipe) -> None:
        """Every option table against the factory it is passed to (factories.py), so that a typo
        fails now, with every problem on its own line, and not when that factory is first called."""
        found: dict[str, None] = {}  # ordered, without repeats

        def check(where: str, key: Key, factory: Factory, options: dict[str, Any],
                  calls: Iterable[dict[str, Any]] = ()) -> None:
            problems = option_problems(factory, options) or call_problems(factory, options, calls)
            by_override = any(k[:len(key)] == key or key[:len(k)] == k for k in self.overridden)
            suffix = " (from an override)" if by_override else ""
            found.update(dict.fromkeys(f"{self.source}: {where}: {problem}{suffix}" for problem in problems))

        datasets = [("[data]", ("data",), recipe.dataset, recipe.dataset_options)]
        datasets += [(f"[[data.add]] #{n}", ("data", "add"), added.dataset, added.options)
                     for n, added in enumerate(recipe.added, 1)]
        for where, key, name, options in datasets:
            dataset = Factory(mmbind.get_dataset(name).factory, f"dataset {name!r}")
            check(f"{where} options", key + ("options",), dataset, options)
        for modality, tower in recipe.towers.items():
            if modality == recipe.anchor:
                table, key = "[anchor]", ("anchor",)
            else:
                table, key = f"[modalities.{modality}]", ("modalities", modality)
            encoder = Factory(mmbind.get_encoder(tower.encoder).factory, f"encoder {tower.encoder!r}")
            check(f"{table} options", key + ("options",), encoder, tower.options)
            augmented = tower.augment and (modality != recipe.anchor or recipe.bind.augment_anchor)
            transform = Factory(mmbind.get_modality(modality).transform, f"the transform of {modality!r}",
                                reserved=("train",))
            modes = [{"train": False}, {"train": True}] if augmented else [{"train": False}]
            check(f"{table} preprocess", key + ("preprocess",), transform, tower.preprocess, modes)
        loss = Factory(mmbind.get_loss(recipe.bind.loss).factory, f"loss {recipe.bind.loss!r}")
        for modality in recipe.bound:  # each tower's loss is built from [bind]'s options and its own
            own = recipe.towers[modality].loss_options
            where, key = ((f"[modalities.{modality}] loss_options", ("modalities", modality, "loss_options")) if own
                          else ("[bind] loss_options", ("bind", "loss_options")))
            check(where, key, loss, recipe.loss_options(modality), [{}])
        if found:
            raise RecipeError("\n".join(found))
