"""Generic encoder building blocks any plugin may use. Modality-agnostic: they see tensors only.

Stable API (other plugins build on it):
- ``SmallCNN(in_channels, width, output_dim)``: the two-conv MNIST tutorial net for small images.
- ``ConvNet(in_channels, widths, output_dim)``: strided conv stack + global pooling, any input size.
- ``ConvNet1d(in_channels, widths, kernels, output_dim)``: the same over time, for (B, C, T)
  signals (IMU, pressure sensors, any multichannel time series).
- ``vit_encoder(img_size, patch_size, in_chans, embed_dim, depth, num_heads, output_dim,
  grad_checkpointing=False)``: a timm VisionTransformer (num_classes=0), random init.
- ``SequenceTransformer(input_dim, embed_dim, depth, num_heads, output_dim, max_len)``: timm
  transformer blocks over (B, L, input_dim) vectors with an optional padding mask.
- ``TokenTransformer(vocab_size, embed_dim, depth, num_heads, output_dim, max_len)``: the same
  over (B, L) integer token ids (an embedding table instead of the linear input map).
- ``set_grad_checkpointing(module, enable=True)`` and ``count_parameters(module)``.

Every module has an int ``output_dim`` and returns (B, output_dim) unnormalised features.
This module imports torch, so plugins import it inside their factories, never at module level.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.utils.checkpoint


class SmallCNN(nn.Module):
    """Two 3x3 convolutions (width, 2*width) + 2x2 max-pool + dropout + dense ``output_dim``.

    The embedding net of the classic MNIST contrastive tutorial (32/64 filters, dense 128).
    An adaptive average pool to ``grid`` x ``grid`` after the max-pool makes the dense layer
    independent of the input size; at 28x28 input the map is already 12x12, so it is the
    tutorial's network exactly. ``padding=1`` keeps tiny inputs (8x8 scans) from shrinking.
    """

    def __init__(
        self,
        in_channels: int = 1,
        width: int = 32,
        output_dim: int = 128,
        grid: int = 12,
        dropout: float = 0.25,
        padding: int = 0,
    ) -> None:
        super().__init__()
        self.output_dim = int(output_dim)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=padding),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, padding=padding),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(grid),
            nn.Dropout(dropout),
            nn.Flatten(),
        )
        self.dense = nn.Linear(2 * width * grid * grid, self.output_dim)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The tutorial's embedding is the ReLU output of the dense layer.
        return self.act(self.dense(self.features(x)))


class ConvNet(nn.Module):
    """Stride-2 3x3 conv + BatchNorm + ReLU stages, global average pool, linear to output_dim.

    Cheap at any input size (224x224 costs ~45 MFLOPs with the default widths), so it is the
    tiny CPU encoder for image-like modalities (depth, thermal, spectrograms).
    """

    def __init__(
        self,
        in_channels: int = 1,
        widths: Sequence[int] = (16, 32, 64, 128),
        output_dim: int = 128,
    ) -> None:
        super().__init__()
        if not widths:
            raise ValueError("ConvNet needs at least one stage width")
        self.output_dim = int(output_dim)
        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            layers += [
                nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, self.output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


class ConvNet1d(nn.Module):
    """Stride-2 1-D conv + BatchNorm + ReLU stages over time, global average pool, dropout,
    linear to output_dim: the tiny CPU encoder for (B, channels, time) signals of any length."""

    def __init__(
        self,
        in_channels: int,
        widths: Sequence[int] = (32, 64, 128, 128),
        kernels: Sequence[int] = (7, 5, 5, 3),
        output_dim: int = 128,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if len(widths) != len(kernels) or not widths:
            raise ValueError(f"ConvNet1d needs one kernel size per stage width, got {list(widths)} and {list(kernels)}")
        self.in_channels = int(in_channels)
        self.output_dim = int(output_dim)
        layers: list[nn.Module] = []
        channels = self.in_channels
        for width, kernel in zip(widths, kernels):
            layers += [nn.Conv1d(channels, int(width), int(kernel), stride=2, padding=int(kernel) // 2, bias=False),
                       nn.BatchNorm1d(int(width)), nn.ReLU(inplace=True)]
            channels = int(width)
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels, self.output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"batch of shape {tuple(x.shape)}: expected (B, {self.in_channels}, T)")
        return self.head(self.dropout(self.features(x).mean(dim=2)))


class ViTEncoder(nn.Module):
    """A timm VisionTransformer without classifier, plus a linear map to ``output_dim``
    (identity when it equals ``embed_dim``), as ImageBind's per-modality heads do."""

    def __init__(self, vit: nn.Module, output_dim: int) -> None:
        super().__init__()
        self.vit = vit
        self.output_dim = int(output_dim)
        embed_dim = int(vit.num_features)
        self.proj = nn.Identity() if embed_dim == self.output_dim else nn.Linear(embed_dim, self.output_dim)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.vit.set_grad_checkpointing(enable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.vit(x))


def vit_encoder(
    img_size: int = 224,
    patch_size: int = 16,
    in_chans: int = 3,
    embed_dim: int = 768,
    depth: int = 12,
    num_heads: int = 12,
    output_dim: int = 1024,
    grad_checkpointing: bool = False,
    mlp_ratio: float = 4.0,
    drop_path_rate: float = 0.0,
    global_pool: str = "token",
) -> ViTEncoder:
    """A randomly initialised ViT from timm layers. ``dynamic_img_size`` is on, so inputs of a
    size other than ``img_size`` (a multiple of ``patch_size``) work with interpolated position
    embeddings; ``img_size`` only sets the stored grid."""
    from timm.models.vision_transformer import VisionTransformer

    if embed_dim % num_heads:
        raise ValueError(f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
    vit = VisionTransformer(
        img_size=img_size,
        patch_size=patch_size,
        in_chans=in_chans,
        num_classes=0,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        drop_path_rate=drop_path_rate,
        global_pool=global_pool,
        dynamic_img_size=True,
    )
    encoder = ViTEncoder(vit, output_dim)
    if grad_checkpointing:
        encoder.set_grad_checkpointing(True)
    return encoder


class SequenceTransformer(nn.Module):
    """Transformer over a sequence of vectors: linear embed, learned positions, a class token,
    timm ``Block`` layers, final LayerNorm, pooled (class token or masked mean) -> output_dim.

    forward(x, mask=None): x (B, L, input_dim) float; mask (B, L) bool, True = real position.
    """

    def __init__(
        self,
        input_dim: int,
        embed_dim: int = 256,
        depth: int = 4,
        num_heads: int = 4,
        output_dim: int = 256,
        max_len: int = 512,
        mlp_ratio: float = 4.0,
        pool: str = "cls",
        drop_path_rate: float = 0.0,
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        from timm.models.vision_transformer import Block

        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        self.output_dim = int(output_dim)
        self.max_len = int(max_len)
        self.pool = pool
        self.grad_checkpointing = bool(grad_checkpointing)
        self.embed = nn.Linear(input_dim, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, max_len + 1, embed_dim))
        # Stochastic-depth rate rising linearly over the blocks (plain floats: works on the meta device).
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, drop_path=r) for r in rates
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, self.output_dim)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = bool(enable)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, length = x.shape[:2]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.max_len}")
        h = self.embed(x)
        h = torch.cat([self.cls_token.expand(batch, -1, -1), h], dim=1) + self.pos_embed[:, : length + 1]
        attn_mask = None
        keep = None
        if mask is not None:
            keep = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=x.device), mask.bool()], dim=1)
            # Additive float mask works in both timm attention paths (fused SDPA and eager);
            # the class token is always visible, so no row is fully masked.
            attn_mask = torch.zeros(batch, 1, 1, length + 1, dtype=h.dtype, device=h.device)
            attn_mask = attn_mask.masked_fill(~keep[:, None, None, :], torch.finfo(h.dtype).min)
        for block in self.blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                h = torch.utils.checkpoint.checkpoint(block, h, attn_mask, use_reentrant=False)
            else:
                h = block(h, attn_mask=attn_mask)
        h = self.norm(h)
        if self.pool == "cls":
            pooled = h[:, 0]
        elif keep is None:
            pooled = h[:, 1:].mean(dim=1)
        else:
            weights = keep[:, 1:, None].to(h.dtype)
            pooled = (h[:, 1:] * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.head(pooled)


class TokenTransformer(SequenceTransformer):
    """SequenceTransformer over (B, L) int64 token ids: forward(ids, mask=None)."""

    def __init__(self, vocab_size: int, embed_dim: int = 256, depth: int = 4, num_heads: int = 4,
                 output_dim: int = 256, max_len: int = 512, **options) -> None:
        super().__init__(1, embed_dim, depth, num_heads, output_dim, max_len, **options)
        self.vocab_size = int(vocab_size)
        self.embed = nn.Embedding(self.vocab_size, embed_dim)
        nn.init.normal_(self.embed.weight, std=0.02)


def set_grad_checkpointing(module: nn.Module, enable: bool = True) -> int:
    """Turn gradient checkpointing on (or off) in every submodule that supports it: timm models
    and mmbind blocks (``set_grad_checkpointing``) and transformers models
    (``gradient_checkpointing_enable``). Returns how many modules were switched."""
    switched = 0
    # Switching a module twice (a wrapper and the timm model inside it) is harmless.
    for sub in module.modules():
        if hasattr(sub, "gradient_checkpointing_enable") and getattr(sub, "supports_gradient_checkpointing", False):
            if enable:
                sub.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            else:
                sub.gradient_checkpointing_disable()
            switched += 1
        elif callable(getattr(sub, "set_grad_checkpointing", None)):
            sub.set_grad_checkpointing(enable)
            switched += 1
    return switched


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with requires_grad)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
