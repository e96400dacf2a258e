"""Transformer layers of ImageBind's shape, built from torch and timm layers.

ImageBind's trunks are pre-norm transformers (LayerNorm eps 1e-6, GELU MLP of ratio 4) whose
attention is ``nn.MultiheadAttention``; the audio, depth, thermal and IMU trunks append a learned
key and value to every sequence (``add_bias_kv``). Here attention keeps one ``qkv`` and one
``proj`` linear layer, timm's layout (so LoRA and partial fine-tuning target the same module names
as in timm ViTs), with the learned key/value as ``bias_k``/``bias_v``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, Mlp

LN_EPS = 1e-6


class Attention(nn.Module):
    """Multi-head self-attention on (B, L, D). ``bias_kv``: a learned key and value are appended
    to the keys and values of every sequence (visible to every query). ``causal``: each token
    attends to itself and the tokens before it (the text tower)."""

    def __init__(self, dim: int, num_heads: int, bias_kv: bool = False, causal: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = int(num_heads)
        self.causal = bool(causal)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        if bias_kv:
            self.bias_k = nn.Parameter(torch.empty(1, 1, dim))
            self.bias_v = nn.Parameter(torch.empty(1, 1, dim))
            nn.init.xavier_normal_(self.bias_k)
            nn.init.xavier_normal_(self.bias_v)
        else:
            self.bias_k = self.bias_v = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.expand(batch, 1, dim)], dim=1)
            v = torch.cat([v, self.bias_v.expand(batch, 1, dim)], dim=1)
        heads = lambda t: t.reshape(batch, t.shape[1], self.num_heads, -1).transpose(1, 2)  # noqa: E731
        mask = None
        if self.causal:
            # Lower-triangular over the real keys; an appended learned key stays visible.
            mask = torch.ones(length, k.shape[1], dtype=torch.bool, device=x.device).tril()
            mask[:, length:] = True
        out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(batch, length, dim))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, bias_kv: bool = False, causal: bool = False,
                 drop_path: float = 0.0, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads, bias_kv=bias_kv, causal=causal)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, mlp_ratio * dim, act_layer=nn.GELU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Transformer(nn.Module):
    """A stack of ``Block`` (drop path rising linearly from 0 to ``drop_path`` over the blocks, as
    ImageBind's), with an optional LayerNorm before the first block (the vision trunk has one)."""

    def __init__(self, dim: int, depth: int, num_heads: int, bias_kv: bool = False, causal: bool = False,
                 norm_pre: bool = False, drop_path: float = 0.0) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"a transformer needs depth >= 1 blocks, got {depth}")
        self.norm_pre = nn.LayerNorm(dim, eps=LN_EPS) if norm_pre else nn.Identity()
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(dim, num_heads, bias_kv=bias_kv, causal=causal, drop_path=rate) for rate in rates)
        self.grad_checkpointing = False
        self.apply(_init_weights)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = bool(enable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm_pre(x)
        for block in self.blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


def _init_weights(module: nn.Module) -> None:
    """Random init for training from scratch (an import overwrites it): Xavier-uniform linear
    weights and zero biases, as ImageBind's trunks."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
