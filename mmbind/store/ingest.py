"""Embed a stream of inputs into a store collection, batch by batch, resumably; and a dataset's
split as such a stream (``mmbind embed --dataset`` and the recipe's embed stage).

Each batch: hash the inputs' content, drop those the collection already holds (so a resumed run
after a crash re-encodes nothing that was committed), encode the rest with the binder, append as
one commit (``EmbeddingStore.add_stream``). Only one batch is in memory at a time.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from mmbind.hashing import content_hash
from mmbind.plugin.specs import BindingData, Modality
from mmbind.store.errors import StoreError
from mmbind.store.store import AddResult, EmbeddingStore, EntryBatch

if TYPE_CHECKING:
    from mmbind.binder import Binder
    from mmbind.recipe import Recipe

_STAGE_BATCH_SIZE = 256  # the recipe's embed stage: inputs per encode call and per commit


@dataclass
class EmbedItem:
    """One input and its optional columns; ``id`` defaults to the file an input names (its
    ``path``) or to a string input itself."""

    input: Any
    id: str | None = None
    label: Any = None
    path: str | None = None
    meta: Mapping[str, Any] | None = None


def _item(x: Any, spec: Modality) -> EmbedItem:
    if isinstance(x, EmbedItem):
        item = x
    elif isinstance(x, Mapping):
        if "input" not in x:
            raise StoreError(f"embed item {dict(x)!r}: expected an 'input' key")
        unknown = set(x) - {"input", "id", "label", "path", "meta"}
        if unknown:
            raise StoreError(f"embed item has unknown keys {sorted(unknown)}: expected input, id, label, path, meta")
        item = EmbedItem(**x)
    else:
        item = EmbedItem(x)
    if item.path is None:
        file = spec.input_file(item.input)
        if file is not None:
            item.path = os.fspath(item.input) if isinstance(item.input, (str, os.PathLike)) else str(file)
    if item.id is None:
        if item.path is not None:
            item.id = item.path
        elif isinstance(item.input, str):
            item.id = item.input
    return item


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _modality(name: str) -> Modality:
    from mmbind import get_modality

    try:
        return get_modality(name)
    except KeyError as error:
        raise StoreError(str(error)) from None


def _open_collection(store: EmbeddingStore, binder: Binder, collection: str, modality: str,
                     fingerprint: str) -> None:
    if collection in store:
        info = store.info(collection)
        if info.modality != modality:
            raise StoreError(f"collection {collection!r} holds {info.modality} embeddings, not {modality}")
    else:
        tau = binder.temperature(modality) if hasattr(binder, "temperature") else None
        store.create_collection(collection, modality=modality, dim=int(binder.dim), fingerprint=fingerprint,
                                tau=tau)


def embed_inputs(store: EmbeddingStore, binder: Binder, collection: str, items: Iterable[Any], *, modality: str,
                 batch_size: int = 64, fingerprint: str | None = None,
                 on_commit: Callable[[AddResult, int], None] | None = None) -> AddResult:
    """Embed ``items`` (paths, texts, arrays, or EmbedItem/dicts with columns) into ``collection``,
    creating it from the binder's dim, fingerprint and temperature if needed. Returns the totals;
    ``skipped`` counts inputs whose content was already stored (or repeated in the stream)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    fingerprint = fingerprint or binder.fingerprint()
    _open_collection(store, binder, collection, modality, fingerprint)
    spec = _modality(modality)

    def encoded() -> Iterator[EntryBatch]:
        for raw in _batches(items, batch_size):
            batch = [_item(x, spec) for x in raw]
            hashes = [content_hash(item.input, spec) for item in batch]
            known = store.has_hashes(collection, hashes)
            fresh = [i for i, k in enumerate(known) if not k]
            if fresh:
                inputs = [str(batch[i].input) if isinstance(batch[i].input, Path) else batch[i].input for i in fresh]
                vectors = binder.encode(inputs, modality=modality, batch_size=batch_size)
            else:
                vectors = np.empty((0, int(binder.dim)), np.float32)
            yield EntryBatch(vectors, ids=[batch[i].id for i in fresh], labels=[batch[i].label for i in fresh],
                             paths=[batch[i].path for i in fresh], metas=[batch[i].meta for i in fresh],
                             hashes=[hashes[i] for i in fresh], skipped=len(batch) - len(fresh))

    return store.add_stream(collection, encoded(), fingerprint=fingerprint, on_commit=on_commit)


def dataset_items(data: BindingData, split: str, modality: str, id_prefix: str) -> list[EmbedItem]:
    """One modality of a dataset split as EmbedItems: id ``<id_prefix>/<i>``, the class name as
    label (None when unknown), and as metadata the pairing key, the sample's own metadata, and
    ``simulated: true`` when the dataset simulates this modality."""
    samples = data.splits[split][modality]
    items = []
    for i, (x, label, key) in enumerate(zip(samples.inputs, samples.labels, samples.keys)):
        meta = {"key": key, **(samples.meta[i] if samples.meta is not None else {})}
        if modality in data.simulated:
            meta.setdefault("simulated", True)
        known = 0 <= int(label) < len(data.class_names)
        items.append(EmbedItem(x, id=f"{id_prefix}/{i}", label=data.class_names[int(label)] if known else None,
                               meta=meta))
    return items


def embed_split(binder: Binder, data: BindingData, recipe: Recipe) -> Path:
    """The recipe's embed stage: every bound modality of the ``[embed] split`` into the run's
    store, one collection per modality; a rerun skips what the store already holds."""
    path = recipe.run_dir / recipe.embed.store
    split = recipe.embed.split
    fingerprint = binder.fingerprint()
    with EmbeddingStore(path) as store:
        for modality in data.splits[split]:
            if modality in binder.modalities:
                embed_inputs(store, binder, modality, dataset_items(data, split, modality, f"{split}/{modality}"),
                             modality=modality, batch_size=_STAGE_BATCH_SIZE, fingerprint=fingerprint)
    return path


__all__ = ["EmbedItem", "embed_inputs", "dataset_items", "embed_split"]
