"""A small CPU video encoder for training from scratch, on (B, clips, 3, T, S, S) batches."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from mmbind.nn import ConvNet


class VideoCNN(nn.Module):
    """Each frame through a small strided 2-D CNN; a clip's frame features are concatenated in
    time order (so the direction of motion counts) and projected; clips are averaged."""

    def __init__(self, frames: int = 2, widths: Sequence[int] = (16, 32, 64, 128), frame_dim: int = 128,
                 output_dim: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        self.frames = int(frames)
        self.output_dim = int(output_dim)
        self.frame = ConvNet(3, tuple(widths), frame_dim)
        self.clip = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(self.frames * frame_dim, self.output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 6 or x.shape[2] != 3 or x.shape[3] != self.frames:
            raise ValueError(f"video-cnn-tiny expects (B, clips, 3, {self.frames}, S, S), got {tuple(x.shape)}")
        batch, clips, _, frames, height, width = x.shape
        per_frame = self.frame(x.permute(0, 1, 3, 2, 4, 5).reshape(-1, 3, height, width))
        per_clip = self.clip(per_frame.view(batch * clips, -1))
        return per_clip.view(batch, clips, -1).mean(dim=1)
