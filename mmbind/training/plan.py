"""The epoch plan: which samples and anchors every step trains on, and this rank's share of it.

A plan is drawn from the epoch's seed alone, identically on every rank, as *global* batches of
``batch_size * world_size`` rows per modality; ``rank_share`` then gives each rank every
world_size-th row. So a run's data order depends on (seed, epoch) only: a resumed run replays
it, and N processes together see what one process would on the global batch.
"""
from __future__ import annotations

import logging
import math
from typing import NamedTuple, Sequence

import torch

from mmbind import distributed as dist
from mmbind.pairing import pair_index
from mmbind.plugin.specs import ModalitySamples

logger = logging.getLogger(__name__)

# A prime stride larger than any epoch count, so distinct (seed, epoch) pairs, including the
# negative epochs of anchor pretraining, never share a seed.
EPOCH_SEED_STRIDE = 100_003
# Augmentation seeds: int64 with room to add the rank.
SEED_RANGE = 2**62
# Anchor picks are drawn as integers in [0, PICK_RANGE) taken modulo the number of matching
# anchors, which is far smaller, so every match is (all but) equally likely.
PICK_RANGE = 2**31 - 1

# One global batch: per modality, its (sample index, anchor index) rows.
GlobalBatch = dict[str, list[tuple[int, int]]]


class PlanItem(NamedTuple):
    """One row of a rank's batch: a sample of ``modality``, the anchor sample it is paired with
    this time, and the augmentation seed of the step on this rank."""

    modality: str
    sample: int
    anchor: int
    seed: int


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch of a run (torch is reseeded with it at the start of the epoch)."""
    return seed * EPOCH_SEED_STRIDE + epoch


def rank_share(batches: list[GlobalBatch], generator: torch.Generator) -> list[list[PlanItem]]:
    """This rank's part of every global batch: every world_size-th row of each modality,
    starting at its rank. Each step's augmentation seed is drawn from ``generator`` after the
    batches, plus the rank, so the ranks augment their shares differently."""
    seeds = torch.randint(0, SEED_RANGE, (len(batches),), generator=generator).tolist()
    rank, world = dist.rank(), dist.world_size()
    return [[PlanItem(modality, sample, anchor, seeds[step] + rank)
             for modality, rows in batch.items() for sample, anchor in rows[rank::world]]
            for step, batch in enumerate(batches)]


def bind_plan(pairs: dict[str, list[list[int]]], steps: int, batch_size: int, seed: int) -> list[list[PlanItem]]:
    """This rank's items for each of ``steps`` binding steps of an epoch (``seed``: the epoch's).

    Each modality walks seeded permutations of its paired samples (a new one when exhausted)
    and draws a random matching anchor for each; every step has ``batch_size`` rows of every
    modality on every rank. The plan has its own generator: it does not touch torch's global
    stream, which dropout draws from."""
    generator = torch.Generator().manual_seed(seed)
    size = batch_size * dist.world_size()
    batches: list[GlobalBatch] = [{} for _ in range(steps)]
    for modality, matches in pairs.items():
        usable = torch.tensor([j for j, m in enumerate(matches) if m])
        order = torch.cat([usable[torch.randperm(len(usable), generator=generator)]
                           for _ in range(math.ceil(steps * size / len(usable)))])
        picks = torch.randint(0, PICK_RANGE, (steps * size,), generator=generator).tolist()
        for step in range(steps):
            rows = order[step * size:(step + 1) * size].tolist()
            batches[step][modality] = [(j, matches[j][picks[step * size + k] % len(matches[j])])
                                       for k, j in enumerate(rows)]
    return rank_share(batches, generator)


def pretrain_plan(modality: str, n: int, batch_size: int, generator: torch.Generator) -> list[list[PlanItem]]:
    """This rank's items for one epoch of anchor pretraining: a permutation of the ``n`` anchor
    samples in global batches (each sample is its own anchor). Under DDP the permutation wraps
    around so that every rank has a full share of the last batch."""
    world = dist.world_size()
    size = batch_size * world
    steps = math.ceil(n / size)
    order = torch.randperm(n, generator=generator)
    if world > 1:
        order = order.repeat(math.ceil(steps * size / n))[:steps * size]
    batches = [{modality: [(j, j) for j in order[s * size:(s + 1) * size].tolist()]} for s in range(steps)]
    return rank_share(batches, generator)


def anchor_pairs(split: dict[str, ModalitySamples], anchor: str, bound: Sequence[str]) -> dict[str, list[list[int]]]:
    """For every bound modality, the anchor samples each of its training samples pairs with.

    Raises ValueError when a modality pairs with no anchor sample at all; logs a warning when
    some of its samples pair with none (they are skipped)."""
    pairs = {}
    for modality in bound:
        pairs[modality] = pair_index(split[anchor].keys, split[modality].keys)
        unpaired = sum(1 for m in pairs[modality] if not m)
        if unpaired == len(pairs[modality]):
            raise ValueError(f"no {modality!r} training sample pairs with any {anchor!r} sample: "
                             f"check the dataset's keys")
        if unpaired:
            logger.warning("%d %r training samples pair with no anchor and are skipped", unpaired, modality)
    return pairs


def steps_per_epoch(configured: int, sizes: Sequence[int], batch_size: int) -> int:
    """Binding steps per epoch: ``configured`` if set (> 0), else enough global batches for the
    largest modality (of ``sizes``) to be seen once."""
    if configured:
        return configured
    return max(1, math.ceil(max(sizes) / (batch_size * dist.world_size())))
