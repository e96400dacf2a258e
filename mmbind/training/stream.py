"""Binding from streamed shards (``SampleStream``): data larger than memory.

The epoch's data order depends on (seed, epoch, world size, lanes) only, never on timing:

- each bound modality's shards are permuted with the epoch's seed and dealt to
  ``world_size * lanes`` lanes (lane = rank * lanes + k), so no shard is read twice in an epoch;
- a lane reads its shards in that order, each shard shuffled as a whole (a shard fits in
  memory), in batches of ``batch_size`` records;
- step s of a rank takes the next batch of lane s % lanes of every modality, so every rank
  runs the same number of steps: the largest number that every lane can fill, so no sample
  is seen twice in an epoch (the remainder of each lane is dropped, like ``drop_last``).

``lanes`` is ``max(1, num_workers)`` and DataLoader worker w serves the steps first + w,
first + w + lanes, ...; so a run resumed at any step reads exactly the batches that the
uninterrupted run would (skipping whole shards by their counts, without reading them).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np
import torch

import mmbind
from mmbind import distributed as dist
from mmbind.binder import Binder
from mmbind.hashing import content_hash
from mmbind.plugin.specs import SampleStream
from mmbind.training.data import Batch, ModalityBatch, one_thread, seeded
from mmbind.training.plan import SEED_RANGE


class StreamPlan(NamedTuple):
    """Who reads what in a streamed epoch (the same on every rank)."""

    streams: dict[str, SampleStream]  # bound modality -> its training stream
    batch_size: int
    lanes: int  # per rank
    world: int
    steps: int  # per rank and epoch

    @classmethod
    def build(cls, streams: dict[str, SampleStream], batch_size: int, lanes: int, configured_steps: int = 0
              ) -> "StreamPlan":
        """The plan for this process group; ValueError when a lane would get no full batch."""
        world = dist.world_size()
        total = world * lanes
        per_lane = []
        for modality, stream in streams.items():
            if len(stream.shards) < total:
                raise ValueError(f"{modality!r}: {len(stream.shards)} shard(s) cannot feed {world} process(es) x "
                                 f"{lanes} loader lane(s); write at least {total} shards (smaller --shard-size)")
            # the fewest samples any lane can get, whatever the epoch's shard order
            counts = sorted(stream.counts)
            per_lane.append(sum(counts[:len(counts) // total]) // batch_size)
        batches = min(per_lane)
        if batches == 0:
            raise ValueError(f"streamed shards too small: some loader lane gets fewer than batch_size={batch_size} "
                             f"samples; write larger or fewer shards, or lower [bind] batch_size")
        steps = batches * lanes
        return cls(streams, batch_size, lanes, world, min(steps, configured_steps) if configured_steps else steps)

    def shard_order(self, modality: str, epoch_seed: int) -> list[int]:
        """The epoch's order of a modality's shards (indices into ``streams[modality].shards``)."""
        rng = np.random.default_rng([_nonneg(epoch_seed), list(self.streams).index(modality)])
        return rng.permutation(len(self.streams[modality].shards)).tolist()

    def lane_shards(self, modality: str, epoch_seed: int, lane: int) -> list[int]:
        """The shards one lane (rank * lanes + k) reads this epoch, in order."""
        return self.shard_order(modality, epoch_seed)[lane::self.world * self.lanes]


def _nonneg(seed: int) -> int:
    return seed % 2**63


def step_seed(epoch_seed: int, step: int, rank: int) -> int:
    """The augmentation seed of one step on one rank."""
    return int(np.random.SeedSequence([_nonneg(epoch_seed), step, rank]).generate_state(1, np.uint64)[0]) % SEED_RANGE


class _Lane:
    """The records of one lane, from its ``first`` record on: whole shards before it are
    skipped by their counts; each shard is read whole and permuted with the epoch's seed."""

    def __init__(self, stream: SampleStream, shards: list[int], first: int, epoch_seed: int, modality_id: int):
        self.stream = stream
        self.shards = shards
        self.first = first
        self.seed = [_nonneg(epoch_seed), modality_id]
        self.offsets = np.concatenate([[0], np.cumsum(stream.counts)]).tolist()

    def __iter__(self) -> Iterator[tuple[int, dict]]:
        skip = self.first
        for shard in self.shards:
            count = self.stream.counts[shard]
            if skip >= count:
                skip -= count
                continue
            records = list(self.stream.read(self.stream.shards[shard]))
            if len(records) != count:
                raise mmbind.InputError(f"{self.stream.shards[shard]}: {len(records)} records, but its index "
                                        f"says {count}; rewrite the shards")
            order = np.random.default_rng([*self.seed, shard]).permutation(count)
            for row in order[skip:].tolist():
                yield self.offsets[shard] + row, records[row]  # a sample id unique in the stream
            skip = 0


class StreamDataset(torch.utils.data.IterableDataset):
    """One rank's batches of a streamed epoch: set ``epoch_seed`` and ``first_step`` before
    iterating. Yields collated ``Batch``es; with DataLoader workers, worker w yields the steps
    first_step + w, + lanes, ... (the DataLoader takes them round robin: in step order)."""

    def __init__(self, binder: Binder, plan: StreamPlan, augment: dict[str, bool], hash_anchors: bool):
        self.binder = binder
        self.plan = plan
        self.augment = augment
        self.hash_anchors = hash_anchors  # the anchor cache looks up rows by content hash
        self.anchor = binder.anchor_modality
        self.epoch_seed = 0
        self.first_step = 0

    def __len__(self) -> int:
        return self.plan.steps - self.first_step

    def __iter__(self) -> Iterator[Batch]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rank, lanes = dist.rank(), self.plan.lanes
        if workers not in (1, lanes):
            raise RuntimeError(f"{workers} loader workers for {lanes} lanes")
        readers: dict[str, Iterator[tuple[int, dict]]] = {}
        for step in range(self.first_step + worker, self.plan.steps, workers):
            rows = {}
            for modality_id, (modality, stream) in enumerate(self.plan.streams.items()):
                lane = rank * lanes + step % lanes
                key = f"{modality}/{lane}"
                if key not in readers:  # first batch of this lane here: start at its step // lanes'th batch
                    shards = self.plan.lane_shards(modality, self.epoch_seed, lane)
                    readers[key] = iter(_Lane(stream, shards, step // lanes * self.plan.batch_size,
                                              self.epoch_seed, modality_id))
                rows[modality] = [next(readers[key]) for _ in range(self.plan.batch_size)]
            yield self.load(rows, step_seed(self.epoch_seed, step, rank))

    def load(self, rows: dict[str, list[tuple[int, dict]]], seed: int) -> Batch:
        """Load, transform and collate one step's records of every modality, under its seed."""
        binder, anchor = self.binder, self.anchor
        batch: Batch = {}
        with seeded(seed), one_thread():
            for modality, items in rows.items():
                records = [r for _, r in items]
                load, transform = mmbind.get_modality(modality).load, binder.transform(modality, train=self.augment[modality])
                load_anchor = mmbind.get_modality(anchor).load
                transform_anchor = binder.transform(anchor, train=self.augment[anchor])
                batch[modality] = ModalityBatch(
                    inputs=binder.collate(modality, [transform(load(r["input"])) for r in records]),
                    index=torch.tensor([i for i, _ in items]),
                    anchor_index=torch.full((len(items),), -1),
                    labels=torch.tensor([int(r.get("label", -1)) for r in records]),
                    anchor_inputs=binder.collate(anchor, [transform_anchor(load_anchor(r["anchor"])) for r in records]),
                    anchor_hashes=[content_hash(r["anchor"], anchor) for r in records] if self.hash_anchors else None,
                )
        return batch


def _identity(batch: Batch) -> Batch:
    return batch


class StreamLoader:
    """A fresh DataLoader over a StreamDataset for each epoch (its workers need the epoch);
    ``seed(epoch)`` is the epoch's seed."""

    def __init__(self, dataset: StreamDataset, seed: Callable[[int], int], num_workers: int, device: torch.device):
        self.dataset = dataset
        self.seed = seed
        self.num_workers = num_workers
        self.device = device

    def epoch(self, epoch: int, first_step: int = 0) -> "StreamLoader":
        """Ready to yield the batches of ``epoch`` from step ``first_step`` on."""
        self.dataset.epoch_seed, self.dataset.first_step = self.seed(epoch), first_step
        return self

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[Batch]:
        workers = self.num_workers
        return iter(torch.utils.data.DataLoader(
            self.dataset, batch_size=None, collate_fn=_identity, num_workers=workers,
            pin_memory=self.device.type == "cuda", prefetch_factor=4 if workers else None,
            generator=torch.Generator()))  # its own: loading must not consume the model's RNG stream


def streamed_modalities(split: dict[str, Any], bound: Sequence[str]) -> list[str]:
    """The bound modalities of a training split that stream; ValueError if some do and some don't."""
    streamed = [m for m in bound if isinstance(split[m], SampleStream)]
    if streamed and len(streamed) != len(bound):
        held = [m for m in bound if m not in streamed]
        raise ValueError(f"bound modalities {', '.join(streamed)} stream but {', '.join(held)} are in memory: "
                         f"bind from one or the other (write all of them to shards with `mmbind shards write`)")
    return streamed

