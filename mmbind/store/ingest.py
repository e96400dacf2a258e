"""Embed a stream of inputs into a store collection, batch by batch, resumably; and a dataset's
split as such a stream (``mmbind embed --dataset`` and the recipe's embed stage).

Each batch: hash the inputs' content, drop those the collection already holds (so a resumed run
after a crash re-encodes nothing that was committed), encode the rest with the binder, append as
one commit (``EmbeddingStore.add_stream``). Only one batch is in memory at a time.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from mmbind.errors import InputError
from mmbind.hashing import content_hash
from mmbind.plugin.specs import BindingData, Modality
from mmbind.store.errors import StoreError
from mmbind.store.store import AddResult, EmbeddingStore, EntryBatch

if TYPE_CHECKING:
    from mmbind.binder import Binder
    from mmbind.recipe import Recipe

log = logging.getLogger(__name__)
_STAGE_BATCH_SIZE = 256  # the recipe's embed stage: inputs per encode call and per commit
CONTENT_KEY = "content"  # metadata key of an input that is its own content (a phrase), as embedded


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
    if isinstance(item.input, str) and item.path is None:
        # the input is its own content (a phrase): keep it, so a search hit can show it
        item.meta = {CONTENT_KEY: item.input, **(item.meta or {})}
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
                     fingerprint: str) -> bool:
    """Make sure ``collection`` exists for ``modality``; True if it was created now."""
    if collection in store:
        info = store.info(collection)
        if info.modality != modality:
            raise StoreError(f"collection {collection!r} holds {info.modality} embeddings, not {modality}")
        return False
    tau = binder.temperature(modality) if hasattr(binder, "temperature") else None
    store.create_collection(collection, modality=modality, dim=int(binder.dim), fingerprint=fingerprint, tau=tau)
    return True


def _name(item: EmbedItem) -> str:
    return str(item.id if item.id is not None else item.path if item.path is not None else item.input)[:200]


class _Encoder:
    """Hashes and encodes one batch's inputs; with ``skip_bad`` an input that cannot be read
    (InputError, a missing file) is left out and recorded in ``bad`` instead of stopping the run."""

    def __init__(self, binder: Binder, spec: Modality, batch_size: int, skip_bad: bool, bad: list[tuple[str, str]]):
        self.binder, self.spec, self.batch_size = binder, spec, batch_size
        self.skip_bad, self.bad = skip_bad, bad

    def hashes(self, batch: list[EmbedItem]) -> list[str | None]:
        out: list[str | None] = []
        for item in batch:
            try:
                out.append(content_hash(item.input, self.spec))
            except (InputError, OSError) as error:
                if not self.skip_bad:
                    raise
                self.bad.append((_name(item), str(error)))
                out.append(None)
        return out

    def encode(self, batch: list[EmbedItem]) -> tuple[list[int], np.ndarray]:
        """(the positions in ``batch`` that encoded, their vectors)."""
        inputs = [str(item.input) if isinstance(item.input, Path) else item.input for item in batch]
        try:
            return list(range(len(batch))), self._vectors(inputs)
        except (InputError, OSError):
            if not self.skip_bad:
                raise
        good, vectors = [], []  # one at a time, to tell the bad inputs from the good
        for i, x in enumerate(inputs):
            try:
                vectors.append(self._vectors([x])[0])
                good.append(i)
            except (InputError, OSError) as error:
                self.bad.append((_name(batch[i]), str(error)))
        dim = int(self.binder.dim)
        return good, np.stack(vectors) if vectors else np.empty((0, dim), np.float32)

    def _vectors(self, inputs: list[Any]) -> np.ndarray:
        if not inputs:
            return np.empty((0, int(self.binder.dim)), np.float32)
        vectors = self.binder.encode(inputs, modality=self.spec.name, batch_size=self.batch_size)
        return vectors.detach().cpu().numpy() if hasattr(vectors, "detach") else np.asarray(vectors)


def embed_inputs(store: EmbeddingStore, binder: Binder, collection: str, items: Iterable[Any], *, modality: str,
                 batch_size: int = 64, fingerprint: str | None = None,
                 on_commit: Callable[[AddResult, int], None] | None = None, skip_bad: bool = False,
                 replace: bool = False) -> AddResult:
    """Embed ``items`` (paths, texts, arrays, or EmbedItem/dicts with columns) into ``collection``,
    creating it from the binder's dim, fingerprint and temperature if needed. Returns the totals;
    ``skipped`` counts inputs whose content was already stored (or repeated in the stream).

    An input whose id is already stored with other content (an edited file) is left out and its
    id listed in ``changed``; with ``replace`` the stored entry's vector and hash are overwritten
    instead. With ``skip_bad`` inputs that cannot be read are left out and listed in ``bad``.
    If nothing was committed when an error stops the run, a collection it created is removed.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    fingerprint = fingerprint or binder.fingerprint()
    spec = _modality(modality)
    created = _open_collection(store, binder, collection, modality, fingerprint)
    extra = AddResult()
    encoder = _Encoder(binder, spec, batch_size, skip_bad, extra.bad)

    def encoded() -> Iterator[EntryBatch]:
        for raw in _batches(items, batch_size):
            batch = [_item(x, spec) for x in raw]
            hashes = encoder.hashes(batch)
            readable = [i for i, h in enumerate(hashes) if h is not None]
            known = store.has_hashes(collection, [hashes[i] for i in readable])
            fresh = [i for i, k in zip(readable, known) if not k]
            already = len(readable) - len(fresh)
            stored = store.find_ids(collection, [batch[i].id for i in fresh if batch[i].id is not None])
            if not replace:
                extra.changed += [batch[i].id for i in fresh if batch[i].id in stored]
                fresh = [i for i in fresh if batch[i].id not in stored]
            good, vectors = encoder.encode([batch[i] for i in fresh])
            fresh = [fresh[j] for j in good]
            again = [j for j, i in enumerate(fresh) if batch[i].id in stored]
            if again:  # --replace: overwrite the stored entries of these ids
                store.replace(collection, [stored[batch[fresh[j]].id] for j in again], vectors[again],
                              fingerprint=fingerprint, hashes=[hashes[fresh[j]] for j in again])
                extra.replaced += len(again)
                new = [j for j in range(len(fresh)) if j not in set(again)]
                fresh, vectors = [fresh[j] for j in new], vectors[new]
            yield EntryBatch(vectors, ids=[batch[i].id for i in fresh], labels=[batch[i].label for i in fresh],
                             paths=[batch[i].path for i in fresh], metas=[batch[i].meta for i in fresh],
                             hashes=[hashes[i] for i in fresh], skipped=already)

    try:
        total = store.add_stream(collection, encoded(), fingerprint=fingerprint, on_commit=on_commit)
    except BaseException:
        if created:
            _drop_if_empty(store, collection)
        raise
    total += extra
    return total


def _drop_if_empty(store: EmbeddingStore, collection: str) -> None:
    """After a failed run: remove the collection it created if nothing was committed to it."""
    try:
        if collection in store and store.count(collection) == 0:
            store.delete_collection(collection)
    except StoreError:
        pass  # the store was closed by a failed write; it keeps the empty collection


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


def _stage_prefix(split: str, modality: str) -> str:
    return f"{split}/{modality}/"


def _foreign_id(store: EmbeddingStore, collection: str, prefix: str) -> str | None:
    """The first id of ``collection`` that the embed stage did not write (None if all are its own)."""
    for _, entry_id in store.iter_ids(collection):
        if not entry_id.startswith(prefix):
            return entry_id
    return None


def _refuse_foreign(store: EmbeddingStore, collection: str, prefix: str) -> None:
    foreign = _foreign_id(store, collection, prefix)
    if foreign is not None:
        raise StoreError(
            f"{store.path}: collection {collection!r} holds entries the recipe's embed stage did not write "
            f"(e.g. id {foreign!r}), and the stage writes this collection; it never deletes them: move them "
            f"to a collection of another name (or another store), or set [embed] store to another file")


def check_stage_store(recipe: Recipe) -> None:
    """Before a run: StoreError if a collection the embed stage writes holds entries of the user's."""
    path = recipe.run_dir / recipe.embed.store
    if not path.exists():
        return
    with EmbeddingStore(path, mode="r") as store:
        for modality in recipe.towers:
            if modality in store:
                _refuse_foreign(store, modality, _stage_prefix(recipe.embed.split, modality))


def embed_split(binder: Binder, data: BindingData, recipe: Recipe) -> Path:
    """The recipe's embed stage: every bound modality of the ``[embed] split`` into the run's
    store, one collection per modality; a rerun skips what the store already holds. A collection
    of this stage holding vectors of another model (an earlier run) is replaced; other
    collections, and entries the stage did not write, are never deleted."""
    path = recipe.run_dir / recipe.embed.store
    split = recipe.embed.split
    fingerprint = binder.fingerprint()
    with EmbeddingStore(path) as store:
        for modality in data.splits[split]:
            if modality not in binder.modalities:
                continue
            prefix = _stage_prefix(split, modality)
            if modality in store and store.info(modality).fingerprint != fingerprint:
                _refuse_foreign(store, modality, prefix)
                store.delete_collection(modality)  # an earlier model's vectors, all written by this stage
            result = embed_inputs(store, binder, modality, dataset_items(data, split, modality, prefix.rstrip("/")),
                                  modality=modality, batch_size=_STAGE_BATCH_SIZE, fingerprint=fingerprint)
            if result.changed:
                log.warning("%s: %d %s samples left out: their ids are stored with other content (the dataset "
                            "changed?), e.g. %s; rerun with --overwrite to re-embed", path, len(result.changed),
                            modality, result.changed[0])
    return path


__all__ = ["EmbedItem", "embed_inputs", "dataset_items", "embed_split", "check_stage_store", "CONTENT_KEY"]
