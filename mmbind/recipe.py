"""Recipe files (TOML): the schema, and validation that runs before any work starts.

An error names the file, the field and what is allowed, e.g.
``recipes/digits.toml: [bind] batch_size: expected an integer >= 1, got 0``.
"""
from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import mmbind
from mmbind.binder import BinderConfig, TowerConfig


class RecipeError(ValueError):
    pass


@dataclass
class PretrainConfig:
    """Optional anchor pretraining: supervised on the class and on any meta fields in ``targets``."""

    epochs: int = 3
    batch_size: int = 128
    lr: float = 2e-3
    targets: list[str] = field(default_factory=list)


@dataclass
class BindConfig:
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    steps_per_epoch: int = 0  # 0: enough steps to see the largest modality once
    loss: str = "infonce"
    loss_options: dict[str, Any] = field(default_factory=dict)
    num_workers: int = 0
    anchor_cache: bool = True
    anchor_cache_file: str = ""  # "": keep the anchor cache in memory; a path (relative to the run folder): HDF5
    augment_anchor: bool = False  # augmenting the anchor input bypasses the anchor cache
    precision: str = "fp32"
    accumulation_steps: int = 1


@dataclass
class EvalConfig:
    split: str = "test"
    extra_splits: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=lambda: ["{}"])
    recall_k: list[int] = field(default_factory=lambda: [1, 5, 10])
    text_modality: str = ""  # the tower that embeds zero-shot prompts; "": "text" if bound
    group_by: list[str] = field(default_factory=lambda: ["speaker", "language"])
    supervised_baselines: bool = True
    supervised_epochs: int = 5
    supervised_batch_size: int = 64
    supervised_lr: float = 1e-3
    baseline_max_train: int = 2000
    supervised_max_seconds: float = 300.0
    supervised_budget_seconds: float = 0.0  # all supervised encoders together; 0: no total cap


@dataclass
class EmbedConfig:
    split: str = "test"
    store: str = "embeddings.h5"


@dataclass
class Recipe:
    name: str
    dataset: str
    anchor: str
    towers: dict[str, TowerConfig]
    dataset_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    output_dir: str = ""
    device: str = "cpu"
    threads: int = 0  # CPU threads for compute and loading; 0: the cores free to the process (mmbind.threads)
    pretrain: PretrainConfig | None = None
    bind: BindConfig = field(default_factory=BindConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    source: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def bound(self) -> list[str]:
        return [m for m in self.towers if m != self.anchor]

    def loss_options(self, modality: str) -> dict[str, Any]:
        """The loss options of one bound tower: [bind] loss_options, overridden by the tower's."""
        return {**self.bind.loss_options, **self.towers[modality].loss_options}

    def binder_config(self) -> BinderConfig:
        return BinderConfig(self.anchor, self.towers)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir or f"runs/{self.name}")


_CHECKS = {
    int: ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    float: ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    bool: ("true or false", lambda v: isinstance(v, bool)),
    str: ("a string", lambda v: isinstance(v, str)),
    dict: ("a table", lambda v: isinstance(v, dict)),
    list: ("a list", lambda v: isinstance(v, list)),
}
_MINIMUM = {"supervised_epochs": 0, "supervised_batch_size": 1, "baseline_max_train": 1, "epochs": 0, "batch_size": 1, "lr": 0, "num_workers": 0, "steps_per_epoch": 0,
            "accumulation_steps": 1, "temperature": 1e-4, "warmup_steps": 0,
            "threads": 0, "supervised_budget_seconds": 0}
_CHOICES = {"precision": ("fp32", "bf16"), "head": ("linear", "mlp")}


class _Validator:
    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, message: str) -> RecipeError:
        return RecipeError(f"{self.source}: {where}: {message}")

    def table(self, data: Any, where: str, allowed: list[str], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(data, dict):
            raise self.fail(where, f"expected a table, got {data!r}")
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise self.fail(where, f"unknown field {key!r}{hint} (allowed: {', '.join(allowed)})")
        for key in required:
            if key not in data:
                raise self.fail(where, f"missing required field {key!r}")
        return data

    def value(self, data: dict, key: str, kind: type, where: str) -> Any:
        value = data[key]
        label, ok = _CHECKS[kind]
        if kind is list and ok(value) and not all(isinstance(v, (str, int)) for v in value):
            raise self.fail(f"{where} {key}", f"expected a list of strings or integers, got {value!r}")
        if not ok(value):
            raise self.fail(f"{where} {key}", f"expected {label}, got {value!r}")
        if key in _MINIMUM and value < _MINIMUM[key]:
            raise self.fail(f"{where} {key}", f"expected {label} >= {_MINIMUM[key]}, got {value!r}")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise self.fail(f"{where} {key}", f"expected one of {', '.join(map(repr, _CHOICES[key]))}, got {value!r}")
        return float(value) if kind is float else value

    def dataclass(self, cls: type, data: Any, where: str, required: tuple[str, ...] = ()) -> Any:
        types = {f.name: _field_type(f) for f in fields(cls) if f.name not in ("source", "raw")}
        data = self.table(data, where, list(types), required)
        return cls(**{k: self.value(data, k, types[k], where) for k in data})

    def plugin(self, kind: str, name: str, where: str) -> None:
        try:
            getattr(mmbind, f"get_{kind}")(name)
        except KeyError as error:
            raise self.fail(where, str(error)) from None


def _field_type(f) -> type:
    text = str(f.type)
    for kind in (bool, int, float, str):
        if text.startswith(kind.__name__):
            return kind
    return dict if text.startswith("dict") else list


def parse_recipe(data: dict[str, Any], source: str = "<recipe>") -> Recipe:
    """Validate a recipe table (as read from TOML) and resolve plugin names."""
    v = _Validator(source)
    top = ["name", "seed", "output_dir", "device", "threads", "data", "anchor", "modalities", "bind", "eval", "embed"]
    v.table(data, "recipe", top, required=("name", "data", "anchor", "modalities"))
    scalars = {k: v.value(data, k, kind, "recipe") for k, kind in
               (("name", str), ("seed", int), ("output_dir", str), ("device", str), ("threads", int))
               if k in data}

    data_table = v.table(data["data"], "[data]", ["dataset", "options"], required=("dataset",))
    dataset = v.value(data_table, "dataset", str, "[data]")
    v.plugin("dataset", dataset, "[data] dataset")
    provided = mmbind.get_dataset(dataset).modalities
    if "*" in provided:  # the dataset's modalities come from the user's files
        provided = tuple(mmbind.list_modalities())

    anchor_table = dict(v.table(data["anchor"], "[anchor]", [
        "modality", "encoder", "options", "preprocess", "pretrain"], required=("modality", "encoder")))
    pretrain = anchor_table.pop("pretrain", None)
    anchor = v.value(anchor_table, "modality", str, "[anchor]")
    anchor_table.pop("modality")
    towers = {anchor: _tower(v, anchor_table, anchor, "[anchor]")}
    towers[anchor].head = "none"  # the anchor's encoder output is the space itself

    modalities = v.table(data["modalities"], "[modalities]", list(provided))
    if not modalities:
        raise v.fail("[modalities]", f"bind at least one modality; {dataset!r} provides {', '.join(provided)}")
    for modality, table in modalities.items():
        if modality == anchor:
            raise v.fail(f"[modalities.{modality}]", "is the anchor; the anchor is set in [anchor]")
        towers[modality] = _tower(v, table, modality, f"[modalities.{modality}]")
    if anchor not in provided:
        raise v.fail("[anchor] modality", f"dataset {dataset!r} provides {', '.join(provided)}, not {anchor!r}")

    recipe = Recipe(
        dataset=dataset, anchor=anchor, towers=towers,
        dataset_options=v.value(data_table, "options", dict, "[data]") if "options" in data_table else {},
        pretrain=None if pretrain is None else v.dataclass(PretrainConfig, pretrain, "[anchor.pretrain]"),
        bind=v.dataclass(BindConfig, data.get("bind", {}), "[bind]"),
        eval=v.dataclass(EvalConfig, data.get("eval", {}), "[eval]"),
        embed=v.dataclass(EmbedConfig, data.get("embed", {}), "[embed]"),
        source=source, raw=data, **scalars,
    )
    v.plugin("loss", recipe.bind.loss, "[bind] loss")
    for modality in recipe.bound:  # loss options are checked now, not when binding starts
        options = recipe.loss_options(modality)
        if options:
            where = f"[modalities.{modality}] loss_options" if towers[modality].loss_options else "[bind] loss_options"
            try:
                mmbind.create_loss(recipe.bind.loss, **options)
            except (TypeError, ValueError) as error:
                raise v.fail(where, f"loss {recipe.bind.loss!r} rejects {options!r}: {error}") from None
    for template in recipe.eval.templates:
        if "{}" not in str(template):
            raise v.fail("[eval] templates", f"each template needs a '{{}}' for the class name, got {template!r}")
    return recipe


def _tower(v: _Validator, table: Any, modality: str, where: str) -> TowerConfig:
    v.plugin("modality", modality, where)
    if isinstance(table, dict) and "encoder" not in table:
        table = {**table, "encoder": mmbind.get_modality(modality).default_encoder}
    tower = v.dataclass(TowerConfig, table, where)
    v.plugin("encoder", tower.encoder, f"{where} encoder")
    encoder_modality = mmbind.get_encoder(tower.encoder).modality
    if encoder_modality != modality:
        raise v.fail(f"{where} encoder", f"{tower.encoder!r} encodes {encoder_modality!r}, not {modality!r}; "
                     f"encoders for {modality!r}: {', '.join(mmbind.list_encoders(modality=modality))}")
    return tower


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read and validate a recipe file. ``overrides`` maps dotted keys ("bind.epochs") to values."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: no such recipe file")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise RecipeError(f"{path}: not valid TOML: {error}") from None
    for dotted, value in (overrides or {}).items():
        table = data
        *parents, last = dotted.split(".")
        for part in parents:
            table = table.setdefault(part, {})
        table[last] = value
    return parse_recipe(data, str(path))
