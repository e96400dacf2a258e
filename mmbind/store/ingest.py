"""Embed a stream of inputs into a store collection, batch by batch, resumably.

Each batch: hash the inputs' content, drop those the collection already holds (so a resumed run
after a crash re-encodes nothing that was committed), encode the rest with the binder, append as
one commit. Only one batch is in memory at a time.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from mmbind.store.store import AddResult, EmbeddingStore, StoreError, content_hash


@dataclass
class EmbedItem:
    """One input and its optional columns; ``id`` defaults to the path (files) or the text."""

    input: Any
    id: str | None = None
    label: Any = None
    path: str | None = None
    meta: Mapping[str, Any] | None = None


def _item(x: Any, modality: str) -> EmbedItem:
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
    is_file = isinstance(item.input, os.PathLike) or (isinstance(item.input, str) and modality != "text")
    if item.path is None and is_file:
        item.path = os.fspath(item.input)
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


def embed_inputs(store: EmbeddingStore, binder: Any, collection: str, items: Iterable[Any], *, modality: str,
                 batch_size: int = 64, fingerprint: str | None = None,
                 on_commit: Callable[[AddResult, int], None] | None = None) -> AddResult:
    """Embed ``items`` (paths, texts, arrays, or EmbedItem/dicts with columns) into ``collection``,
    creating it from the binder's dim, fingerprint and temperature if needed. Returns the totals;
    ``skipped`` counts inputs whose content was already stored (or repeated in the stream)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    fingerprint = fingerprint or binder.fingerprint()
    if collection in store:
        info = store.info(collection)
        if info.modality != modality:
            raise StoreError(f"collection {collection!r} holds {info.modality} embeddings, not {modality}")
    else:
        tau = binder.temperature(modality) if hasattr(binder, "temperature") else None
        store.create_collection(collection, modality=modality, dim=int(binder.dim), fingerprint=fingerprint,
                                tau=tau)
    total = AddResult()
    for raw in _batches(items, batch_size):
        batch = [_item(x, modality) for x in raw]
        hashes = [content_hash(b.input, modality) for b in batch]
        known = store.has_hashes(collection, hashes)
        fresh = [i for i, k in enumerate(known) if not k]
        result = AddResult(0, len(batch) - len(fresh))
        if fresh:
            inputs = [str(batch[i].input) if isinstance(batch[i].input, Path) else batch[i].input for i in fresh]
            vectors = binder.encode(inputs, modality=modality, batch_size=batch_size)
            result += store.add(
                collection, vectors, fingerprint=fingerprint,
                ids=[batch[i].id for i in fresh], labels=[batch[i].label for i in fresh],
                paths=[batch[i].path for i in fresh], metas=[batch[i].meta for i in fresh],
                hashes=[hashes[i] for i in fresh],
            )
        total += result
        if on_commit is not None:
            on_commit(result, store.count(collection))
    return total


__all__ = ["EmbedItem", "embed_inputs"]
