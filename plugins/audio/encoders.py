"""Audio encoders on (B, clips, 1, mel_bins, frames) log-mel batches; clip embeddings are averaged
as ImageBind does. A (B, 1, M, T) batch is taken as one clip per sample."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def _split_clips(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    if x.dim() == 4:
        x = x[:, None]
    if x.dim() != 5 or x.shape[2] != 1:
        raise ValueError(f"audio batch of shape {tuple(x.shape)}: expected (B, clips, 1, mel_bins, frames)")
    batch, clips = x.shape[:2]
    return x.reshape(batch * clips, *x.shape[2:]), clips


class ClipAveraged(nn.Module):
    """Runs ``backbone`` on every clip and averages the clip features per sample."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.output_dim = int(backbone.output_dim)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if hasattr(self.backbone, "set_grad_checkpointing"):
            self.backbone.set_grad_checkpointing(enable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat, clips = _split_clips(x)
        features = self.backbone(flat)
        return features.reshape(-1, clips, features.shape[-1]).mean(dim=1)


class SpectrogramCNN(nn.Module):
    """3x3 conv + BatchNorm + ReLU + 2x2 max-pool per stage, global average pool, linear.

    Max-pooling (not stride-2 convs) keeps the fine frequency detail of the first layer, which
    matters for telling spoken words apart. widths (16, 32, 64, 96) give ~100k parameters with one
    conv per stage, ~235k with ``convs=2`` (which learns spoken digits several times faster).
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 96), output_dim: int = 256, dropout: float = 0.1,
                 convs: int = 1) -> None:
        super().__init__()
        if not widths:
            raise ValueError("audio CNN needs at least one stage width")
        if convs < 1:
            raise ValueError(f"audio CNN option convs={convs!r}: expected an integer >= 1 (convs per stage)")
        self.output_dim = int(output_dim)
        layers: list[nn.Module] = []
        channels = 1
        for width in widths:
            for _ in range(int(convs)):
                layers += [nn.Conv2d(channels, int(width), 3, padding=1, bias=False), nn.BatchNorm2d(int(width)),
                           nn.ReLU(inplace=True)]
                channels = int(width)
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels, self.output_dim)
        # Channels-last (NHWC) weights and inputs: oneDNN's CPU kernels for these few-channel
        # convolutions on a 64x100 map run forward+backward in about 0.7x the time that way
        # (benchmarks/audio_layout.py), and this tower was most of a binding step in the main job.
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.dropout(self.features(x).mean(dim=(2, 3))))


class SpectrogramViT(nn.Module):
    """ImageBind's audio tower shape: 16x16 patches with stride 10 over the 1x128x204 log-mel
    (12 x 19 = 228 overlapping patches), a class token, learned positions, pre-norm timm blocks.

    Patches are cut with ``unfold`` and embedded by the transformer's linear input layer, which
    is exactly a Conv2d(1, embed_dim, patch_size, stride=patch_stride).
    """

    def __init__(
        self,
        mel_bins: int = 128,
        target_frames: int = 204,
        patch_size: int = 16,
        patch_stride: int = 10,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        drop_path_rate: float = 0.1,
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        from mmbind.nn import SequenceTransformer

        if patch_size > min(mel_bins, target_frames):
            raise ValueError(f"patch_size {patch_size} exceeds the spectrogram {mel_bins}x{target_frames}")
        self.patch_size, self.patch_stride = int(patch_size), int(patch_stride)
        self.grid = ((mel_bins - patch_size) // patch_stride + 1, (target_frames - patch_size) // patch_stride + 1)
        self.output_dim = int(embed_dim)
        self.transformer = SequenceTransformer(
            input_dim=patch_size * patch_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
            output_dim=embed_dim, max_len=self.grid[0] * self.grid[1], drop_path_rate=drop_path_rate,
            grad_checkpointing=grad_checkpointing)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.transformer.set_grad_checkpointing(enable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bins, frames = x.shape[-2:]
        grid = ((bins - self.patch_size) // self.patch_stride + 1, (frames - self.patch_size) // self.patch_stride + 1)
        if grid != self.grid:
            raise ValueError(
                f"audio spectrogram {bins}x{frames} gives a {grid[0]}x{grid[1]} patch grid but this ViT was "
                f"built for {self.grid[0]}x{self.grid[1]}: give the encoder the same mel_bins and "
                f"target_frames options as the audio preprocess")
        patches = F.unfold(x, self.patch_size, stride=self.patch_stride)  # (N, p*p, L)
        return self.transformer(patches.transpose(1, 2))


def audio_cnn(widths: Sequence[int], output_dim: int = 256, dropout: float = 0.1, convs: int = 1) -> ClipAveraged:
    return ClipAveraged(SpectrogramCNN(widths, output_dim, dropout, convs))


def audio_vit(**options) -> ClipAveraged:
    return ClipAveraged(SpectrogramViT(**options))
