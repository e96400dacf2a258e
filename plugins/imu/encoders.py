"""IMU encoders on (B, 6, T) batches."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


class ImuCNN(nn.Module):
    """1-D convolutions (stride 2, BatchNorm, ReLU) over time, global average pool, linear."""

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 128), kernels: Sequence[int] = (7, 5, 5, 3),
                 output_dim: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        if len(widths) != len(kernels) or not widths:
            raise ValueError(f"imu CNN needs one kernel size per stage width, got {list(widths)} and {list(kernels)}")
        self.output_dim = int(output_dim)
        layers: list[nn.Module] = []
        channels = 6
        for width, kernel in zip(widths, kernels):
            layers += [nn.Conv1d(channels, int(width), int(kernel), stride=2, padding=int(kernel) // 2, bias=False),
                       nn.BatchNorm1d(int(width)), nn.ReLU(inplace=True)]
            channels = int(width)
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels, self.output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check(x)
        return self.head(self.dropout(self.features(x).mean(dim=2)))


class ImuTransformer(nn.Module):
    """ImageBind's IMU tower shape: the (6, T) recording is cut into windows of ``window`` samples
    (8: 250 windows of 48 values for T = 2000), each window linearly projected to a token, then a
    class token, learned positions and pre-norm timm blocks (512-d, 6 blocks, 8 heads)."""

    def __init__(self, length: int = 2000, window: int = 8, embed_dim: int = 512, depth: int = 6,
                 num_heads: int = 8, drop_path_rate: float = 0.7, grad_checkpointing: bool = False) -> None:
        super().__init__()
        from mmbind.nn import SequenceTransformer

        if window < 1 or length < 1:
            raise ValueError(f"imu transformer: window {window} and length {length} must be positive")
        self.window = int(window)
        self.max_tokens = -(-int(length) // self.window)
        self.output_dim = int(embed_dim)
        self.transformer = SequenceTransformer(
            input_dim=6 * self.window, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
            output_dim=embed_dim, max_len=self.max_tokens, drop_path_rate=drop_path_rate,
            grad_checkpointing=grad_checkpointing)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.transformer.set_grad_checkpointing(enable)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 6, T) -> (B, ceil(T / window), 6 * window); the last window is zero-padded."""
        _check(x)
        pad = -x.shape[2] % self.window
        if pad:
            x = F.pad(x, (0, pad))
        n = x.shape[2] // self.window
        if n > self.max_tokens:
            raise ValueError(f"IMU recording of {x.shape[2]} samples gives {n} windows but this encoder was "
                             f"built for length {self.max_tokens * self.window}: give the encoder the same "
                             f"length option as the imu preprocess")
        # (B, 6, n, w) -> (B, n, 6, w): each token holds every channel of one time window.
        return x.reshape(x.shape[0], 6, n, self.window).permute(0, 2, 1, 3).reshape(x.shape[0], n, 6 * self.window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transformer(self.tokens(x))


def _check(x: torch.Tensor) -> None:
    if x.dim() != 3 or x.shape[1] != 6:
        raise ValueError(f"IMU batch of shape {tuple(x.shape)}: expected (B, 6, T)")
