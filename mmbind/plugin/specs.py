"""What plugins register. Plain dataclasses: importing this module never imports torch."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from mmbind.errors import InputError

__all__ = ["InputError", "Modality", "EncoderSpec", "LossSpec", "DatasetSpec", "ModalitySamples", "BindingData",
           "file_input"]


def file_input(x: Any) -> Path | None:
    """The default ``Modality.input_file``: a str or os.PathLike input names a file; anything
    else (an array, a tensor, bytes) is the content itself."""
    return Path(x) if isinstance(x, (str, os.PathLike)) else None


@dataclass(frozen=True)
class Modality:
    """A kind of input.

    load(x) turns a file path, an in-memory array/tensor or a string into the raw sample the
    transforms take; it raises InputError naming the file and what was expected.
    transform(train=False, **options) returns a callable raw -> model input (a tensor, or a
    string for text). Options are the sizes a recipe may set (recorded in the checkpoint);
    train=True adds the train-time augmentation. A transform may also offer ``precompute(raw)``
    (its deterministic part) and ``finish(x)`` (the rest) with transform(raw) ==
    finish(precompute(raw)); the trainer then computes ``precompute`` once per sample.
    collate(list) batches transformed samples; None means torch.stack.
    extensions are the file suffixes ``mmbind embed DIR`` picks up for this modality.
    example_inputs() returns a few raw inputs that ``load`` accepts (files the plugin ships or
    generates, or in-memory arrays); tests and ``mmbind check-plugin`` run them through load,
    transform, collate and the default encoder.
    input_file(x) says which file an input names, or None when the input is the content itself
    (an array; for text, a phrase). The core hashes, stores and reports inputs by it, so it never
    has to know a modality by name. The default treats every str as a path.
    language: inputs are natural-language strings, so the tower can embed zero-shot prompts made
    from class names (evaluation picks such a tower as the prompt tower).
    """

    name: str
    load: Callable[[Any], Any]
    transform: Callable[..., Callable[[Any], Any]]
    default_encoder: str
    collate: Callable[[list], Any] | None = None
    extensions: tuple[str, ...] = ()
    example_inputs: Callable[[], list[Any]] | None = None
    description: str = ""
    input_file: Callable[[Any], Path | None] = file_input
    language: bool = False


@dataclass(frozen=True)
class EncoderSpec:
    """A named encoder factory: factory(**options) -> nn.Module with an int ``output_dim``.

    The module takes a collated batch of the modality and returns (B, output_dim) features.
    Factories that load weights take ``pretrained: bool``; from_pretrained passes False and then
    loads the saved weights, so nothing is fetched twice.
    """

    name: str
    modality: str
    factory: Callable[..., Any]
    description: str = ""
    pretrained: bool = False


@dataclass(frozen=True)
class LossSpec:
    """A named loss factory: factory(**options) -> nn.Module called as
    ``loss(anchor, other, logit_scale, labels=None) -> scalar`` on unit vectors (B, D)."""

    name: str
    factory: Callable[..., Any]
    description: str = ""


@dataclass
class ModalitySamples:
    """The samples of one modality in one split.

    inputs: anything the modality's ``load`` accepts (paths, arrays, strings).
    labels: class index per sample (-1 if unknown).
    keys: pairing key per sample. A sample pairs with every anchor sample whose key equals its
    key or starts with its key followed by "/" (so "7" pairs with "7/red", "7/red" only with
    "7/red"). Concept datasets use the class; explicitly paired datasets use a unique stem.
    meta: optional JSON-able dict per sample (colour, speaker, source file, ...).
    """

    inputs: Sequence[Any]
    labels: Sequence[int]
    keys: Sequence[str]
    meta: Sequence[dict] | None = None

    def __post_init__(self) -> None:
        if not (len(self.inputs) == len(self.labels) == len(self.keys)):
            raise ValueError(
                f"inputs, labels and keys must have one entry per sample, got "
                f"{len(self.inputs)}, {len(self.labels)} and {len(self.keys)}"
            )
        if self.meta is not None and len(self.meta) != len(self.inputs):
            raise ValueError(f"meta has {len(self.meta)} entries for {len(self.inputs)} samples")

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass
class BindingData:
    """What a dataset factory returns: split name -> modality name -> samples.

    splits: at least "train" (what binding uses); the recipe's ``[eval] split`` (default "test")
    is evaluated and embedded, and ``[eval] extra_splits`` (e.g. held-out real recordings) are
    scored against its galleries.
    class_names: the name of each label index; zero-shot prompts are the ``[eval] templates``
    filled with these names, so write them as a person would say them ("seven", "T-shirt").
    simulated: the modalities whose data is simulated, so that reports say so.
    description: one line for reports and ``mmbind list datasets``.
    """

    splits: dict[str, dict[str, ModalitySamples]]
    class_names: list[str] = field(default_factory=list)
    simulated: frozenset[str] = frozenset()
    description: str = ""

    def modalities(self) -> list[str]:
        return sorted({m for split in self.splits.values() for m in split})


@dataclass(frozen=True)
class DatasetSpec:
    """A named paired dataset: factory(**options) -> BindingData. ``modalities`` is ("*",) when
    they come from the user's files (any registered modality)."""

    name: str
    modalities: tuple[str, ...]
    factory: Callable[..., BindingData]
    description: str = ""
