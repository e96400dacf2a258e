"""Gradient accumulation that keeps every negative (GradCache, Gao et al. 2021; OpenCLIP's accum).

A contrastive batch of B pairs is processed in K micro-batches: first every micro-batch is
embedded without gradients, the loss is taken over the whole batch of cached features and
differentiated with respect to them, then each micro-batch is embedded again with gradients and
back-propagated with its slice of that feature gradient. The parameter gradient equals the
full-batch one (dropout replays the same masks: the RNG state of each micro-batch is restored),
while activation memory is that of B/K samples.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, Callable

import torch
import torch.nn as nn

from mmbind import distributed as dist


def batch_length(batch: Any) -> int:
    """Rows in a collated batch: a tensor, a dict or tuple of them, or a list of items."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, dict):
        return batch_length(next(v for v in batch.values() if isinstance(v, (torch.Tensor, list, tuple, dict))))
    if isinstance(batch, tuple):
        return batch_length(batch[0])
    if isinstance(batch, list):
        return len(batch)
    raise TypeError(f"cannot split a batch of type {type(batch).__name__}: expected a tensor, "
                    f"a dict or tuple of tensors, or a list of items")


def slice_batch(batch: Any, start: int, stop: int) -> Any:
    """Rows start:stop of a collated batch (tuples are structures, lists are items)."""
    if isinstance(batch, (torch.Tensor, list)):
        return batch[start:stop]
    if isinstance(batch, dict):
        return {k: slice_batch(v, start, stop) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(slice_batch(v, start, stop) for v in batch)
    return batch  # a scalar setting shared by every row


def micro_batches(batch: Any, k: int) -> list[tuple[int, int, Any]]:
    """Split into at most k nearly equal, non-empty (start, stop, rows) parts."""
    n = batch_length(batch)
    bounds = sorted({round(i * n / k) for i in range(k + 1)})
    return [(a, b, slice_batch(batch, a, b)) for a, b in zip(bounds, bounds[1:])]


def _rng_state(device: torch.device) -> tuple:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def grad_cache_backward(
    tower: nn.Module,
    inputs: Any,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    k: int,
    device: torch.device,
    autocast: AbstractContextManager | None = None,
    scale: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Back-propagate ``loss_fn(tower(inputs))`` in ``k`` micro-batches; return the (detached) loss.

    ``tower`` may be wrapped in DistributedDataParallel. Parameters used only by ``loss_fn`` (temperatures) get their
    gradient from the loss directly. ``scale``: fp16's gradient scaler (``GradScaler.scale``),
    applied to the loss, so every micro-batch's gradient comes out scaled.
    """
    autocast = autocast or nullcontext()
    module = dist.unwrap(tower)
    parts = micro_batches(inputs, k)
    buffers = {name: b.clone() for name, b in module.named_buffers()}
    states, cached = [], []
    with torch.no_grad():
        for _, _, rows in parts:
            states.append(_rng_state(device))
            with autocast:
                cached.append(module(rows).float())
    with torch.no_grad():  # the first pass must not move BatchNorm running statistics twice
        for name, b in module.named_buffers():
            b.copy_(buffers[name])
    features = torch.cat(cached).requires_grad_()
    loss = loss_fn(features)
    (scale(loss) if scale is not None else loss).backward()
    grad = features.grad
    after = _rng_state(device)
    for i, (start, stop, rows) in enumerate(parts):
        _set_rng_state(states[i], device)
        # Under DDP every micro-batch's backward is synchronised: averaging an already averaged
        # partial sum again leaves it unchanged, so the result is exact. (DDP's no_sync would
        # save K-1 all-reduces but fails with static_graph, which the towers need for unused
        # parameters, in torch 2.11.)
        with autocast:
            z = tower(rows).float()
        z.backward(grad[start:stop])
    _set_rng_state(after, device)
    return loss.detach()
