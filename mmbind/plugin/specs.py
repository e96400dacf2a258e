"""What plugins register. Plain dataclasses: importing this module never imports torch."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from mmbind.errors import InputError

__all__ = ["InputError", "Modality", "EncoderSpec", "LossSpec", "DatasetSpec", "ModalitySamples", "SampleStream",
           "BindingData", "file_input", "collate_batch"]


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


def collate_batch(items: list, modality: Modality, encoder: Any = None) -> Any:
    """Batch transformed samples for ``encoder``: its own ``collate`` when it has one (a
    tokenizer), else the modality's, else ``torch.stack``."""
    collate = getattr(encoder, "collate", None) or modality.collate
    if collate is not None:
        return collate(items)
    import torch

    return torch.stack(items)


@dataclass(frozen=True)
class EncoderSpec:
    """A named encoder factory: factory(**options) -> nn.Module with an int ``output_dim``.

    The module takes a collated batch of the modality and returns (B, output_dim) features.
    An encoder whose batching depends on it (a tokenizer) defines ``collate(items) -> batch``,
    used in place of the modality's collate (``collate_batch``): then batching, tokenisation
    included, runs in the data loader's workers and ``forward`` sees tensors only, so the tower
    can be exported (``mmbind export``). Factories that load weights take ``pretrained: bool``; from_pretrained passes False and then
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
class SampleStream:
    """The samples of one modality in one split, read shard by shard instead of held in memory
    (data larger than memory; see docs/devices-and-scale.md).

    shards: the shards (file paths), in a fixed order; counts: the samples in each.
    read(shard): the shard's records in order, each a dict with "input" (what the modality's
    ``load`` accepts), "label" (int, -1 if unknown), "key" (str) and, in a bound modality's
    stream, "anchor": the input of the anchor sample it is paired with. ``read`` must be
    picklable (a module-level function or a functools.partial of one): loader workers call it.
    Training streams a bound modality's pairs; binding's shuffling is by shard order and within
    a shard, so a shard must fit in memory (a few thousand samples).
    """

    shards: Sequence[str]
    counts: Sequence[int]
    read: Callable[[str], Iterable[dict]]

    def __post_init__(self) -> None:
        if len(self.shards) != len(self.counts):
            raise ValueError(f"{len(self.shards)} shards but {len(self.counts)} counts")

    def __len__(self) -> int:
        return sum(self.counts)


@dataclass
class BindingData:
    """What a dataset factory returns: split name -> modality name -> samples
    (``ModalitySamples`` in memory, or a ``SampleStream`` read from shards: training only).

    splits: at least "train" (what binding uses); the recipe's ``[eval] split`` (default "test")
    is evaluated and embedded, and ``[eval] extra_splits`` (e.g. held-out real recordings) are
    scored against its galleries.
    class_names: the name of each label index; zero-shot prompts are the ``[eval] templates``
    filled with these names, so write them as a person would say them ("seven", "T-shirt").
    simulated: the modalities whose data is simulated, so that reports say so.
    description: one line for reports and ``mmbind list datasets``.
    """

    splits: dict[str, dict[str, ModalitySamples | SampleStream]]
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
