"""The recipe schema: every table and field of a recipe file, its type, bounds, default and meaning.

``RecipeFile`` is the file as written (its JSON Schema is what `mmbind schema` prints);
``Recipe`` is the same recipe once plugin names are resolved, as the stages read it.
Every default is declared here and only here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator

from mmbind.data.compose import ComposeError
from mmbind.errors import UserError
from mmbind.plugin.specs import BindingData
from mmbind.recipe.errors import RecipeError
from mmbind.recipe.model import ConfigModel
from mmbind.recipe.towers import BinderConfig, TowerConfig

Name = Annotated[str, Field(min_length=1)]


def _optional(schema: dict[str, Any]) -> None:
    """The JSON Schema of a field that may be left out: TOML has no null, so absent is not null."""
    schema.pop("default", None)
    kinds = [kind for kind in schema.pop("anyOf", []) if kind.get("type") != "null"]
    schema.update(*kinds)


class PretrainConfig(ConfigModel):
    """Supervised pretraining of the anchor before it is frozen: cosine classifiers on the class
    label and on each meta field in ``targets``, so that the anchor's space keeps those attributes."""

    epochs: int = Field(3, ge=0, description="Passes over the anchor's training set.")
    batch_size: int = Field(128, ge=1, description="Samples per step and per process.")
    lr: float = Field(2e-3, gt=0, description="AdamW learning rate.")
    targets: list[Name] = Field(default_factory=list,
                                description='Meta fields to classify besides the label, e.g. ["colour"].')


class BindConfig(ConfigModel):
    """Binding every other tower to the frozen anchor."""

    epochs: int = Field(5, ge=0, description="A checkpoint is written at the end of each.")
    batch_size: int = Field(128, ge=1, description="Pairs per modality per step and per process "
                                                   "(the global batch is batch_size * world_size).")
    lr: float = Field(1e-3, gt=0, description="AdamW, linear warm-up then cosine decay.")
    weight_decay: float = Field(0.01, ge=0, description="On weights with 2 or more dimensions only.")
    warmup_steps: int = Field(20, ge=0, description="Steps of linear warm-up.")
    steps_per_epoch: int = Field(0, ge=0, description="0: enough steps for the largest modality's training set once.")
    loss: Name = Field("infonce", description="A registered loss (`mmbind list losses`).")
    loss_options: dict[str, Any] = Field(default_factory=dict,
                                         description="Keyword arguments of the loss factory, for every tower.")
    num_workers: int = Field(0, ge=0, description="Loader processes (persistent; with streamed shards, also the "
                                                  "loader lanes per process).")
    anchor_cache: bool = Field(True, description="Embed every anchor sample once and reuse it.")
    anchor_cache_file: str = Field("", description='"": keep the anchor cache in memory; a path relative to the '
                                                   "run folder: an HDF5 cache reused across runs.")
    augment_anchor: bool = Field(False, description="Augment the anchor's input (bypasses the anchor cache).")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description='"fp32", "bf16" (autocast) or "fp16" (autocast and a gradient scaler; CUDA/MPS).')
    accumulation_steps: int = Field(1, ge=1, description="K > 1: GradCache micro-batches that keep every negative.")
    checkpoint_every: int = Field(0, ge=0, description="N > 0: also a checkpoint every N steps inside an epoch "
                                                       "(--resume continues from the step); 0: at epoch ends only.")
    shared_projection: bool = Field(False, description="A linear map (the identity at the start) trained with the "
                                    "towers and applied to every modality's unit embedding, the anchor's too: it moves "
                                    "the anchor's space (a modality-gap remedy; docs/shared-projection.md).")


class EvalConfig(ConfigModel):
    """Evaluation: zero-shot through prompts, retrieval R@K, supervised baselines, accuracy by group."""

    split: Name = Field("test", description="The split that is evaluated and whose galleries every split queries.")
    extra_splits: list[Name] = Field(default_factory=list,
                                     description='More splits scored against those galleries, e.g. ["real"].')
    templates: list[str] = Field(default_factory=lambda: ["{}"], min_length=1,
                                 description="Zero-shot prompt templates, each with {} for the class name; "
                                             "their embeddings are averaged per class.")
    recall_k: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [1, 5, 10], min_length=1,
                                                        description="The K of R@K.")
    text_modality: str = Field("", description='The tower that embeds the prompts; "": the binder\'s language tower.')
    group_by: list[Name] = Field(default_factory=lambda: ["speaker", "language"],
                                 description="Meta fields to report accuracy by.")
    supervised_baselines: bool = Field(True, description="Train the linear probe and the same-size supervised encoder.")
    supervised_epochs: int = Field(5, ge=0, description="Epochs of each supervised baseline.")
    supervised_batch_size: int = Field(64, ge=1, description="Batch size of the supervised baselines.")
    supervised_lr: float = Field(1e-3, gt=0, description="Learning rate of the supervised baselines.")
    baseline_max_train: int = Field(2000, ge=1, description="Training samples per baseline (class balanced).")
    supervised_max_seconds: float = Field(300.0, gt=0, description="Time cap of each supervised encoder's training.")
    supervised_budget_seconds: float = Field(0.0, ge=0, description="Time cap of all supervised encoders' training "
                                                                    "together (0: no total cap); "
                                                                    "`mmbind eval --baseline-budget` overrides it.")

    @field_validator("templates")
    @classmethod
    def _each_template_takes_the_class(cls, templates: list[str]) -> list[str]:
        for template in templates:
            if "{}" not in template:
                raise ValueError(f"{template!r} has no '{{}}' for the class name (each template needs one)")
        return templates


class EmbedConfig(ConfigModel):
    """The split embedded into the run's store."""

    split: Name = Field("test", description="The split embedded into the store, one collection per modality.")
    store: Name = Field("embeddings.h5", description="The store's file, relative to the run folder.")


class LogConfig(ConfigModel):
    """Where metrics go besides metrics.jsonl (the record of truth)."""

    trackers: list[Name] = Field(default_factory=list,
                                 description='Built-in trackers: "tensorboard", "wandb" (the [tracking] extra).')

    @field_validator("trackers")
    @classmethod
    def _known_trackers(cls, trackers: list[str]) -> list[str]:
        from mmbind.tracking.builtin import TRACKERS

        for name in trackers:
            if name not in TRACKERS:
                raise ValueError(f"unknown tracker {name!r}; expected any of {', '.join(TRACKERS)}")
        return trackers


class AddedDataset(ConfigModel):
    """A [[data.add]] table: another dataset whose modalities join [data]'s, each sample paired with
    the base's samples of its class (``mmbind.compose_datasets``); classes are matched by name."""

    dataset: Name = Field(description="A registered dataset (`mmbind list datasets`).")
    options: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of its factory.")
    modalities: list[Name] | None = Field(None, min_length=1, json_schema_extra=_optional,
                                          description="The modalities to add; unset: all of its modalities.")


class DataConfig(ConfigModel):
    """The dataset that the towers are trained and evaluated on."""

    dataset: Name = Field(description="A registered dataset (`mmbind list datasets`).")
    options: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the dataset's factory.")
    add: list[AddedDataset] = Field(default_factory=list,
                                    description="[[data.add]] tables: datasets whose modalities are added, "
                                                "paired by class.")


class TowerTable(TowerConfig):
    """A [modalities.<name>] table: a tower; the encoder defaults to the modality's."""

    encoder: Name | None = Field(None, json_schema_extra=_optional,
                                  description="A registered encoder for this modality (`mmbind list encoders`); "
                                              "unset: the modality's default encoder.")


class AnchorTable(TowerTable):
    """The [anchor] table: the anchor's modality and tower, and its optional pretraining."""

    modality: Name = Field(description="The anchor's modality (`mmbind list modalities`).")
    head: Literal["none"] = Field("none", description="The anchor has no head: its encoder output is the space.")
    pretrain: PretrainConfig | None = Field(None, json_schema_extra=_optional,
                                             description="Pretrain the anchor before binding (a table).")


class _RecipeCommon(ConfigModel):
    """Fields that read the same in the file and in the resolved recipe."""

    name: Name = Field(description="The run's name; the run folder is runs/<name>.")
    seed: int = Field(0, ge=0, description="Seeds pretraining, batch plans and augmentation "
                                           "(a resumed run ends with the same weights).")
    output_dir: str = Field("", description='The run folder; "" is runs/<name>.')
    device: Name = Field("auto", description="auto (CUDA, then MPS, then the CPU), cpu, cuda, cuda:N or mps; "
                                             "--device overrides it; under torchrun each rank takes its local GPU "
                                             "when this is cuda.")
    threads: int = Field(0, ge=0, description="torch's intra-op CPU threads (each loader worker runs one more "
                                              "beside them); 0: the cores free to the process (mmbind.threads); "
                                              "--threads overrides it.")
    base: str = Field("", description="A binder folder to start from (an imported ImageBind, a trained binder); "
                                       "see docs/recipes.md, starting from a base binder.")
    bind: BindConfig = Field(default_factory=BindConfig, description="Binding (a table).")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Evaluation (a table).")
    embed: EmbedConfig = Field(default_factory=EmbedConfig, description="The embed stage (a table).")
    log: LogConfig = Field(default_factory=LogConfig, description="Experiment trackers (a table).")


class RecipeFile(_RecipeCommon):
    """An mmbind recipe (TOML): `mmbind run RECIPE` trains, evaluates, embeds and reports."""

    model_config = ConfigDict(title="mmbind recipe")

    data: DataConfig = Field(description="The dataset (a table).")
    anchor: AnchorTable = Field(description="The anchor's modality and tower (a table).")
    modalities: dict[str, TowerTable] = Field(
        description="One table per bound modality, named by the modality (`mmbind list modalities`).")


class Recipe(_RecipeCommon):
    """A validated recipe with plugin names resolved (``load_recipe`` makes it): what the stages read."""

    dataset: Name
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    added: list[AddedDataset] = Field(default_factory=list)  # [[data.add]]
    anchor: Name
    towers: dict[str, TowerConfig]  # every tower, the anchor's (head "none") first
    pretrain: PretrainConfig | None = None
    source: str = ""  # the recipe file
    raw: dict[str, Any] = Field(default_factory=dict)  # the recipe's tables as read, overrides applied

    @property
    def bound(self) -> list[str]:
        return [m for m in self.towers if m != self.anchor]

    def loss_options(self, modality: str) -> dict[str, Any]:
        """The loss options of one bound tower: [bind] loss_options, overridden by the tower's."""
        return {**self.bind.loss_options, **self.towers[modality].loss_options}

    def load_data(self) -> BindingData:
        """The recipe's dataset, with the modalities of each [[data.add]] dataset added by class."""
        import mmbind

        data = self._load(self.dataset, self.dataset_options, "[data]")
        for number, added in enumerate(self.added, 1):
            where = f"[[data.add]] #{number}"
            extra = self._load(added.dataset, added.options, where)
            try:
                data = mmbind.compose_datasets(data, extra, added.modalities, names=(self.dataset, added.dataset))
            except ComposeError as error:
                raise RecipeError(f"{self.source or 'recipe'}: {where}: {error}") from None
        return data

    def _load(self, name: str, options: dict[str, Any], where: str) -> BindingData:
        """Dataset ``name``; a value its factory refuses (a ValueError) names the table. Names and
        types of the options were checked at load; a TypeError now is a bug and keeps its traceback."""
        import mmbind

        try:
            return mmbind.load_dataset(name, **options)
        except UserError:
            raise  # already names its file
        except ValueError as error:
            raise RecipeError(f"{self.source or 'recipe'}: {where} options: dataset {name!r} refused "
                              f"{options!r}: {error}") from error

    def to_toml(self) -> str:
        """The recipe as it runs, as a recipe file: the tables with every override applied and
        every default written out (encoders resolved), so that loading it gives this recipe again."""
        import tomli_w

        tables = self.model_dump(include={"name", "seed", "output_dir", "device"})
        tables["data"] = {"dataset": self.dataset, "options": self.dataset_options,
                          "add": [added.model_dump(exclude_none=True) for added in self.added]}
        tables["anchor"] = {"modality": self.anchor, **self.towers[self.anchor].model_dump()}
        if self.pretrain is not None:
            tables["anchor"]["pretrain"] = self.pretrain.model_dump()
        tables["modalities"] = {modality: self.towers[modality].model_dump() for modality in self.bound}
        tables.update(self.model_dump(include={"bind", "eval", "embed"}))
        header = f"# {self.source or 'The recipe'} as it ran: overrides applied, every default written out.\n"
        return header + tomli_w.dumps(tables)

    def binder_config(self) -> BinderConfig:
        """The binder's towers: the recipe's, after the base's towers the recipe does not list
        (carried along unchanged and untrained, e.g. ImageBind's text tower for zero-shot)."""
        towers = dict(self.towers)
        if self.base:
            from mmbind.derived import read_config

            towers = {**BinderConfig.from_dict(read_config(self.base)).towers, **towers}
        return BinderConfig(anchor=self.anchor, towers=towers, shared_projection=self.bind.shared_projection)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir or f"runs/{self.name}")


def json_schema() -> dict[str, Any]:
    """The recipe file's JSON Schema (draft 2020-12), for editors that complete and check TOML."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **RecipeFile.model_json_schema()}


__all__ = ["AddedDataset", "AnchorTable", "BindConfig", "DataConfig", "EmbedConfig", "EvalConfig", "PretrainConfig",
           "Recipe", "RecipeFile", "TowerConfig", "TowerTable", "json_schema"]
