"""torch.distributed helpers: process-group set-up from torchrun's environment, rank/world size,
wrapping towers in DistributedDataParallel, and collectives (all-gather with gradient, averaging).

Every helper is a no-op in a single process, so the trainer runs the same code either way.
"""
from __future__ import annotations

import atexit
import datetime
import os
import sys
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn


def is_distributed() -> bool:
    """True when this process has joined a process group."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 in a single process)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of processes (1 in a single process)."""
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """This process's rank on its machine (LOCAL_RANK, set by torchrun)."""
    return int(os.environ.get("LOCAL_RANK", rank()))


def is_main() -> bool:
    """True on rank 0, the one that writes files."""
    return rank() == 0


def env_world_size() -> int:
    """WORLD_SIZE as set by torchrun (1 when not launched by it)."""
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable WORLD_SIZE={value!r}: expected an integer") from None


def init_from_env(device: str = "auto", timeout_minutes: float = 30.0) -> torch.device:
    """Join the process group torchrun describes (WORLD_SIZE > 1); return this rank's device
    (``mmbind.devices.resolve_device``: "auto", "cpu", "cuda", "cuda:N", "mps").

    Backend: nccl for CUDA devices, gloo otherwise. With "cuda" each rank takes cuda:LOCAL_RANK.
    A second call (or a single-process run) only resolves the device.
    """
    from mmbind.devices import resolve_device

    target = resolve_device(device)
    if target.type == "cuda" and target.index is None and env_world_size() > 1:
        target = torch.device("cuda", local_rank())
    if target.type == "cuda":
        torch.cuda.set_device(target)
    if env_world_size() > 1 and not is_distributed():
        missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise RuntimeError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {', '.join(missing)} is not set: "
                               f"launch with `torchrun --nproc_per_node=N -m mmbind ...`")
        backend = "nccl" if target.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes))
        sys.excepthook = _note_failure(sys.excepthook)
        atexit.register(shutdown)
    return target


_failed = False


def _note_failure(hook: Callable[..., None]) -> Callable[..., None]:
    def excepthook(*args: Any) -> None:
        global _failed
        _failed = True
        hook(*args)

    return excepthook


def shutdown(timeout_seconds: float = 60.0) -> None:
    """Leave the process group (registered at exit by init_from_env).

    On a normal exit the ranks first meet (so none tears down connections another still
    uses), and garbage is collected while the interpreter is fully alive: gloo work objects
    holding tensors must not be freed during interpreter finalisation. After an uncaught
    exception the meeting is skipped (the other ranks may never come; torchrun stops them).
    """
    if not is_distributed():
        return
    import gc

    if not _failed and world_size() > 1:
        try:
            if dist.get_backend() == "gloo":  # the only backend with a barrier that times out
                dist.monitored_barrier(timeout=datetime.timedelta(seconds=timeout_seconds))
            else:
                dist.barrier()
        except RuntimeError:
            pass  # a rank left early; leave anyway
    gc.collect()
    dist.destroy_process_group()


def barrier() -> None:
    """Wait until every rank gets here (nothing to wait for in a single process)."""
    if is_distributed() and world_size() > 1:
        dist.barrier()


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around a module with trainable parameters (else the module itself).

    ``static_graph`` lets a tower have parameters its forward never uses (a pooler left in a
    pretrained text model) without the per-step graph walk of ``find_unused_parameters``; the
    towers' graphs do not change from step to step, which is all it asks.
    """
    if not is_distributed() or world_size() == 1:
        return module
    if not any(p.requires_grad for p in module.parameters()):
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, static_graph=True)


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (else the module itself)."""
    return getattr(module, "module", module)


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate x from every rank along dim 0; the gradient flows back to each rank's part
    (the backward sums every rank's gradient for this rank's rows)."""
    if not is_distributed() or world_size() == 1:
        return x
    import torch.distributed.nn.functional as dist_fn

    return torch.cat(dist_fn.all_gather(x), dim=0)


def all_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (no gradient); the tensor itself in one process."""
    if not is_distributed() or world_size() == 1:
        return x
    x = x.detach().clone()
    dist.all_reduce(x)
    return x / world_size()


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients of parameters that live outside a DDP module (temperatures, loss
    parameters) over ranks, in one collective. Every rank runs the same modalities each step, so
    the set of parameters with a gradient is the same on every rank."""
    if not is_distributed() or world_size() == 1:
        return
    params = [p for p in params if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def all_gather_rows(x: torch.Tensor, counts: Sequence[int]) -> list[torch.Tensor]:
    """Every rank's (count_r, ...) tensor, on every rank; counts are known to all ranks."""
    if not is_distributed() or world_size() == 1:
        return [x]
    longest = max(counts)
    padded = x.new_zeros((longest, *x.shape[1:]))
    padded[:len(x)] = x
    parts = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(parts, padded.contiguous())
    return [part[:n] for part, n in zip(parts, counts)]
