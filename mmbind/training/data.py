"""The data side of training: plan items in, collated batches out.

``BindDataset`` loads and transforms the samples a plan names, seeding every batch from the plan
so augmentation does not depend on which process loads it; ``PlanLoader`` is one DataLoader per
stage whose batches are replaced every epoch.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
import torch

import mmbind
from mmbind.binder import Binder
from mmbind.plugin.specs import ModalitySamples
from mmbind.training.plan import PlanItem

# Transformed inputs of towers without augmentation are kept, per loading process (each
# DataLoader worker holds its own copy), up to this many bytes: enough for the inputs of a
# typical dataset to be transformed once per run, small against a machine's memory.
INPUT_CACHE_BYTES = 1 << 30
# The size counted for a cached input of a type whose size is not known (a small object).
UNSIZED_ITEM_BYTES = 64


class LoadedItem(NamedTuple):
    """One plan item, loaded: the transformed input (None when the trainer holds the tower's
    encoder features), its label, and the anchor's transformed input (None unless the anchor
    runs on the batch)."""

    modality: str
    inputs: Any
    sample: int
    anchor: int
    label: int
    anchor_input: Any


class ModalityBatch(NamedTuple):
    """The collated rows of one modality in a batch (tensors of indices and labels, one per row)."""

    inputs: Any  # the tower's collated inputs, or None when its encoder features are precomputed
    index: torch.Tensor  # sample indices, into the modality's training samples
    anchor_index: torch.Tensor  # the paired anchor samples
    labels: torch.Tensor
    anchor_inputs: Any  # the anchor's collated inputs, or None when its embeddings are cached
    anchor_hashes: list[str] | None = None  # streamed data: the anchor inputs' content hashes (the cache's keys)


Batch = dict[str, ModalityBatch]


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with one torch thread. Per-sample transforms are many tiny tensor ops: one
    thread does them faster than a team of OpenMP threads (which spin and wait on a busy
    machine). DataLoader workers already run with one thread; this covers the main process."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch, numpy and random for the block, then restore the caller's RNG states."""
    saved = torch.get_rng_state(), np.random.get_state(), random.getstate()
    torch.default_generator.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(saved[0])
        np.random.set_state(saved[1])
        random.setstate(saved[2])


class BindDataset(torch.utils.data.Dataset):
    """Loads plan items (``PlanItem``) into ``LoadedItem``s and collates them by modality.

    Inputs of towers that are not augmented are transformed once and kept (up to
    ``cache_bytes`` per loading process): their transform gives the same tensor every epoch.
    Of an augmented tower whose train transform has ``precompute``/``finish`` (docs/hooks.md),
    the deterministic ``precompute`` output is kept the same way and ``finish`` runs per epoch.
    A batch is fetched with ``__getitems__``, which seeds torch, numpy and random from the
    batch's seed (and restores the caller's RNG state afterwards), so augmentation does not
    depend on which process loads the batch.
    """

    def __init__(self, binder: Binder, samples: dict[str, ModalitySamples], with_anchor_input: bool,
                 augment_anchor: bool = False, cache_bytes: int = INPUT_CACHE_BYTES,
                 precomputed: frozenset[str] = frozenset()):
        self.binder = binder
        self.precomputed = precomputed  # towers whose frozen encoder features the trainer holds
        self.samples = samples
        self.with_anchor_input = with_anchor_input
        towers = binder.config.towers
        self.augment = {m: (m != binder.anchor_modality or augment_anchor) and towers[m].augment
                        for m in samples}
        self.loaders = {m: mmbind.get_modality(m).load for m in samples}
        self.cache_bytes = cache_bytes
        self._inputs: dict[tuple[str, int], Any] = {}
        self._cached = 0

    def __len__(self) -> int:
        return sum(len(s) for s in self.samples.values())

    def _input(self, modality: str, index: int) -> Any:
        transform = self.binder.transform(modality, train=self.augment[modality])
        # What does not change between epochs is computed once: the whole transform without
        # augmentation, the deterministic first part (``precompute``) of one that has it.
        if not self.augment[modality]:
            fixed, rest = transform, None
        elif hasattr(transform, "precompute"):
            fixed, rest = transform.precompute, transform.finish
        else:
            return transform(self.loaders[modality](self.samples[modality].inputs[index]))
        key = (modality, index)
        item = self._inputs.get(key)
        if item is None:
            item = fixed(self.loaders[modality](self.samples[modality].inputs[index]))
            size = _nbytes(item)
            if self._cached + size <= self.cache_bytes:
                self._inputs[key] = item
                self._cached += size
        return item if rest is None else rest(item)

    def __getitem__(self, item: PlanItem) -> LoadedItem:
        anchor_input = self._input(self.binder.anchor_modality, item.anchor) if self.with_anchor_input else None
        inputs = None if item.modality in self.precomputed else self._input(item.modality, item.sample)
        label = self.samples[item.modality].labels[item.sample]
        return LoadedItem(item.modality, inputs, item.sample, item.anchor, label, anchor_input)

    def __getitems__(self, items: list[PlanItem]) -> list[LoadedItem]:
        """One batch (all its items share the step's seed), loaded under that seed with one thread."""
        if not items:
            return []
        with seeded(items[0].seed), one_thread():
            return [self[item] for item in items]

    def collate(self, items: list[LoadedItem]) -> Batch:
        """Group a batch's items by modality (in order of first appearance) and collate each group."""
        batch: Batch = {}
        for modality in dict.fromkeys(item.modality for item in items):
            group = [item for item in items if item.modality == modality]
            batch[modality] = ModalityBatch(
                inputs=(None if modality in self.precomputed
                        else self.binder.collate(modality, [g.inputs for g in group])),
                index=torch.tensor([g.sample for g in group]),
                anchor_index=torch.tensor([g.anchor for g in group]),
                labels=torch.tensor([g.label for g in group]),
                anchor_inputs=(self.binder.collate(self.binder.anchor_modality, [g.anchor_input for g in group])
                               if self.with_anchor_input else None),
            )
        return batch


def _nbytes(item: Any) -> int:
    if isinstance(item, torch.Tensor):
        return item.element_size() * item.nelement()
    if isinstance(item, np.ndarray):
        return item.nbytes
    if isinstance(item, dict):
        return sum(_nbytes(v) for v in item.values())
    if isinstance(item, (tuple, list)):
        return sum(_nbytes(v) for v in item)
    return len(item) if isinstance(item, (str, bytes)) else UNSIZED_ITEM_BYTES


class _PlanSampler:
    """A batch sampler whose batches are replaced every epoch."""

    def __init__(self) -> None:
        self.batches: list[list[PlanItem]] = []

    def __iter__(self) -> Iterator[list[PlanItem]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class PlanLoader:
    """One DataLoader (and its persistent workers) for a whole stage; ``epoch(e, first_step)``
    (or setting ``plan``) gives it the batches (lists of plan items) to load next;
    ``plan_of(epoch)`` is the stage's plan."""

    def __init__(self, dataset: BindDataset, num_workers: int, device: torch.device,
                 plan_of: Callable[[int], list[list[PlanItem]]] | None = None):
        self.plan_of = plan_of
        self._sampler = _PlanSampler()
        self._loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=self._sampler, collate_fn=dataset.collate, num_workers=num_workers,
            pin_memory=device.type == "cuda", persistent_workers=num_workers > 0,
            prefetch_factor=4 if num_workers else None,
            generator=torch.Generator())  # its own: loading must not consume the model's RNG stream

    def epoch(self, epoch: int, first_step: int = 0) -> "PlanLoader":
        """Ready to yield the batches of ``epoch`` from step ``first_step`` on."""
        assert self.plan_of is not None
        self.plan = self.plan_of(epoch)[first_step:]
        return self

    @property
    def plan(self) -> list[list[PlanItem]]:
        """The batches the next pass over the loader yields, in order."""
        return self._sampler.batches

    @plan.setter
    def plan(self, batches: list[list[PlanItem]]) -> None:
        self._sampler.batches = batches

    def __len__(self) -> int:
        return len(self._sampler)

    def __iter__(self) -> Iterator[Batch]:
        return iter(self._loader)
