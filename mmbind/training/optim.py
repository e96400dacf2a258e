"""The optimizer and learning-rate schedule of binding."""
from __future__ import annotations

import functools
import math
from typing import Iterable

import torch


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """The learning-rate factor at optimizer step ``step`` (0-based): a linear warm-up that
    reaches 1 after ``warmup`` steps, times a cosine that falls from 1 at step 0 to 0 at step
    ``total`` (and stays 0 after it)."""
    ramp = min(1.0, (step + 1) / max(1, warmup))
    return ramp * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


def warmup_cosine_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """``warmup_cosine`` as a scheduler stepped once per optimizer step; its state (the step
    count) goes into checkpoints, so a resumed run continues the same curve."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, functools.partial(warmup_cosine, warmup=warmup, total=max(1, total)))


def adamw(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only: biases, norms' scales and temperatures (fewer
    than two dimensions) are not decayed, as in BERT, CLIP and OpenCLIP."""
    params = list(params)
    return torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}], lr=lr)
