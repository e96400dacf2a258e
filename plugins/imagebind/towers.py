"""ImageBind-compatible towers: stem (ImageBind's "preprocessor"), trunk and head in one encoder.

Each tower maps one modality's batch to ImageBind's output space before normalisation; the
binder l2-normalises (ImageBind's postprocessor) and keeps ImageBind's logit scale as the tower's
temperature. Inputs made of clips (audio, video) are embedded clip by clip; each clip's
embedding is l2-normalised and the clips are averaged, as ImageBind does.

The factories build any size; their defaults are ``imagebind_huge``'s. Weights come from
``mmbind import imagebind`` (plugins/imagebind/convert.py), which maps ImageBind's checkpoint keys
onto these modules; built on their own the towers are randomly initialised.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmbind_plugins.imagebind.layers import LN_EPS, Transformer
from mmbind_plugins.text.encoders import as_texts

CONTEXT_LENGTH = 77
VOCAB_SIZE = 49408


# --- stems: input -> tokens with a class token and learned positions -------------------------------
class PatchStem(nn.Module):
    """Patches projected to ``dim``-wide tokens, an optional LayerNorm (ImageBind's audio, depth,
    thermal and IMU stems have one, with torch's default eps), a class token in front and learned
    positions added. Subclasses set ``proj`` and ``patches``."""

    def __init__(self, dim: int, num_patches: int, norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim) if norm else nn.Identity()
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * dim ** -0.5)
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, dim) * dim ** -0.5)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.norm(self.patches(x))
        if tokens.shape[1] + 1 != self.pos_embed.shape[1]:
            raise ValueError(f"input of shape {tuple(x.shape)} gives {tokens.shape[1]} patches; this tower was "
                             f"built for {self.pos_embed.shape[1] - 1} (check the preprocessing sizes)")
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        return torch.cat([cls, tokens], dim=1) + self.pos_embed


class ImagePatchStem(PatchStem):
    """RGB images or video clips -> space-time patches (ImageBind's vision stem): a Conv3d with a
    temporal kernel of ``frames``; an image is repeated ``frames`` times along time first."""

    def __init__(self, dim: int, img_size: int, patch_size: int, frames: int) -> None:
        super().__init__(dim, (img_size // patch_size) ** 2, norm=False)
        self.frames = int(frames)
        kernel = (self.frames, patch_size, patch_size)
        self.proj = nn.Conv3d(3, dim, kernel_size=kernel, stride=kernel, bias=False)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:  # (B, 3, H, W): an image is a clip of one frame
            x = x.unsqueeze(2)
        if x.shape[2] == 1:
            x = x.expand(-1, -1, self.frames, -1, -1)
        if x.shape[2] != self.frames:
            raise ValueError(f"video clips of {x.shape[2]} frames: this tower's temporal kernel takes "
                             f"{self.frames} frames per clip")
        return self.proj(x).flatten(2).transpose(1, 2)


class ConvPatchStem(PatchStem):
    """(B, C, H, W) maps (log-mel spectrograms, depth, thermal) -> patches by a strided Conv2d."""

    def __init__(self, dim: int, in_chans: int, size: tuple[int, int], patch_size: int, stride: int) -> None:
        grid = [(s - patch_size) // stride + 1 for s in size]
        super().__init__(dim, grid[0] * grid[1], norm=True)
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=stride, bias=False)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class WindowPatchStem(PatchStem):
    """(B, channels, length) sensor series -> windows of ``window`` samples, each flattened channel
    by channel (channels x window values) and linearly projected (ImageBind's IMU stem)."""

    def __init__(self, dim: int, channels: int, length: int, window: int) -> None:
        super().__init__(dim, length // window, norm=True)
        self.window = int(window)
        self.proj = nn.Linear(channels * self.window, dim, bias=False)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        # the length is a multiple of the window (checked by the factory), so a reshape windows it:
        # (B, C, N, window) -> (B, N, C, window); a reshape, not unfold, exports with a dynamic batch
        windows = x.reshape(x.shape[0], x.shape[1], -1, self.window).transpose(1, 2)
        return self.proj(windows.flatten(2))


class TextStem(nn.Module):
    """Token ids (B, context) -> token embeddings plus learned positions."""

    def __init__(self, dim: int, vocab_size: int, context_length: int) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.pos_embed = nn.Parameter(torch.randn(1, context_length, dim) * 0.01)
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.token_embedding(tokens) + self.pos_embed


class Head(nn.Module):
    """One token of the trunk's output (the class token, or the given index per row) ->
    LayerNorm -> dropout -> linear projection to the output space (no bias)."""

    def __init__(self, dim: int, output_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(dim, output_dim, bias=False)

    def forward(self, tokens: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        x = tokens[:, 0] if index is None else tokens[torch.arange(tokens.shape[0], device=tokens.device), index]
        return self.proj(self.dropout(self.norm(x)))


# --- encoders ----------------------------------------------------------------------------------------
class ImageBindEncoder(nn.Module):
    """stem -> trunk -> head. ``sample_shape`` is one sample's shape (checked, for clear errors);
    with ``clips`` a sample is a stack of clips (S, *sample_shape) whose l2-normalised clip
    embeddings are averaged."""

    def __init__(self, name: str, stem: nn.Module, trunk: Transformer, head: Head,
                 sample_shape: Sequence[int | None], clips: bool = False) -> None:
        super().__init__()
        self.name = name
        self.stem = stem
        self.trunk = trunk
        self.head = head
        self.sample_shape = tuple(sample_shape)
        self.clips = bool(clips)
        self.output_dim = int(head.proj.out_features)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.trunk.set_grad_checkpointing(enable)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, *sample_shape) -> (N, output_dim), before normalisation."""
        return self.head(self.trunk(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        if not self.clips:
            return self.embed(x)
        batch, clips = x.shape[:2]
        per_clip = F.normalize(self.embed(x.flatten(0, 1)), dim=-1)
        return per_clip.view(batch, clips, -1).mean(dim=1)

    def _check(self, x: torch.Tensor) -> None:
        lead = ("B", "clips") if self.clips else ("B",)
        shape = tuple(x.shape[len(lead):])
        ok = len(shape) == len(self.sample_shape) and all(
            want is None or got == want for got, want in zip(shape, self.sample_shape))
        if not ok:
            want = ", ".join([*lead, *("*" if s is None else str(s) for s in self.sample_shape)])
            raise ValueError(f"{self.name} expects a batch of shape ({want}), got {tuple(x.shape)}")


class ImageBindTextEncoder(ImageBindEncoder):
    """Token ids (B, 77) -> the end token's output (the highest id in each row, as ImageBind and
    OpenCLIP pick it) -> head. ``collate`` tokenises a batch of texts with OpenCLIP's CLIP BPE
    tokenizer (77 tokens, lower-cased, truncation keeps the end token), so ``forward`` sees
    tensors only and the tower can be exported."""

    def __init__(self, stem: TextStem, trunk: Transformer, head: Head, context_length: int) -> None:
        super().__init__("imagebind-text", stem, trunk, head, (context_length,))
        self.context_length = int(context_length)

    def collate(self, texts: Sequence[str]) -> torch.Tensor:
        """Tokenise a batch of texts: the encoder's input, (B, context_length) token ids."""
        return clip_tokenizer(self.context_length)(as_texts(texts))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self._check(tokens)
        return self.head(self.trunk(self.stem(tokens)), index=tokens.argmax(dim=-1))


@functools.lru_cache(maxsize=4)
def clip_tokenizer(context_length: int = CONTEXT_LENGTH):
    """OpenCLIP's CLIP BPE tokenizer (vocabulary of 49408, the one ImageBind ships too)."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context_length)


def _trunk(embed_dim: int, depth: int, num_heads: int, drop_path: float, grad_checkpointing: bool,
           **kinds: Any) -> Transformer:
    trunk = Transformer(embed_dim, depth, num_heads, drop_path=drop_path, **kinds)
    trunk.set_grad_checkpointing(grad_checkpointing)
    return trunk


def _check_grid(name: str, size: int, patch_size: int) -> None:
    if size % patch_size:
        raise ValueError(f"{name}: img_size {size} is not a multiple of patch_size {patch_size}")


def imagebind_vision(embed_dim: int = 1280, depth: int = 32, num_heads: int = 16, output_dim: int = 1024,
                     img_size: int = 224, patch_size: int = 14, frames: int = 2, drop_path: float = 0.0,
                     grad_checkpointing: bool = False) -> ImageBindEncoder:
    """ImageBind's vision tower (huge: ViT-H/14, 1280-d, 32 blocks) on images (B, 3, H, W)."""
    _check_grid("imagebind-vision", img_size, patch_size)
    return ImageBindEncoder(
        "imagebind-vision", ImagePatchStem(embed_dim, img_size, patch_size, frames),
        _trunk(embed_dim, depth, num_heads, drop_path, grad_checkpointing, norm_pre=True),
        Head(embed_dim, output_dim), (3, img_size, img_size))


def imagebind_video(embed_dim: int = 1280, depth: int = 32, num_heads: int = 16, output_dim: int = 1024,
                    img_size: int = 224, patch_size: int = 14, frames: int = 2, drop_path: float = 0.0,
                    grad_checkpointing: bool = False) -> ImageBindEncoder:
    """ImageBind's vision tower on video: (B, clips, 3, frames, H, W), clip embeddings averaged."""
    _check_grid("imagebind-video", img_size, patch_size)
    return ImageBindEncoder(
        "imagebind-video", ImagePatchStem(embed_dim, img_size, patch_size, frames),
        _trunk(embed_dim, depth, num_heads, drop_path, grad_checkpointing, norm_pre=True),
        Head(embed_dim, output_dim), (3, frames, img_size, img_size), clips=True)


def imagebind_text(embed_dim: int = 1024, depth: int = 24, num_heads: int = 16, output_dim: int = 1024,
                   context_length: int = CONTEXT_LENGTH, vocab_size: int = VOCAB_SIZE, drop_path: float = 0.0,
                   grad_checkpointing: bool = False) -> ImageBindTextEncoder:
    """ImageBind's text tower (OpenCLIP ViT-H-14's: 1024-d, 24 causal blocks)."""
    return ImageBindTextEncoder(
        TextStem(embed_dim, vocab_size, context_length),
        _trunk(embed_dim, depth, num_heads, drop_path, grad_checkpointing, causal=True),
        Head(embed_dim, output_dim), context_length)


def imagebind_audio(embed_dim: int = 768, depth: int = 12, num_heads: int = 12, output_dim: int = 1024,
                    mel_bins: int = 128, target_frames: int = 204, patch_size: int = 16, stride: int = 10,
                    drop_path: float = 0.1, grad_checkpointing: bool = False) -> ImageBindEncoder:
    """ImageBind's audio tower (ViT-B on 16x16 log-mel patches, stride 10) on (B, clips, 1, 128, 204)."""
    return ImageBindEncoder(
        "imagebind-audio", ConvPatchStem(embed_dim, 1, (mel_bins, target_frames), patch_size, stride),
        _trunk(embed_dim, depth, num_heads, drop_path, grad_checkpointing, bias_kv=True),
        Head(embed_dim, output_dim), (1, mel_bins, target_frames), clips=True)


def _single_channel(name: str, embed_dim: int, depth: int, num_heads: int, output_dim: int, img_size: int,
                    patch_size: int, drop_path: float, grad_checkpointing: bool) -> ImageBindEncoder:
    _check_grid(name, img_size, patch_size)
    return ImageBindEncoder(
        name, ConvPatchStem(embed_dim, 1, (img_size, img_size), patch_size, patch_size),
        _trunk(embed_dim, depth, num_heads, drop_path, grad_checkpointing, bias_kv=True),
        Head(embed_dim, output_dim), (1, img_size, img_size))


def imagebind_depth(embed_dim: int = 384, depth: int = 12, num_heads: int = 8, output_dim: int = 1024,
                    img_size: int = 224, patch_size: int = 16, drop_path: float = 0.0,
                    grad_checkpointing: bool = False) -> ImageBindEncoder:
    """ImageBind's depth tower (ViT-S shape, 384-d, 12 blocks) on disparity maps (B, 1, 224, 224)."""
    return _single_channel("imagebind-depth", embed_dim, depth, num_heads, output_dim, img_size, patch_size,
                           drop_path, grad_checkpointing)


def imagebind_thermal(embed_dim: int = 768, depth: int = 12, num_heads: int = 12, output_dim: int = 1024,
                      img_size: int = 224, patch_size: int = 16, drop_path: float = 0.0,
                      grad_checkpointing: bool = False) -> ImageBindEncoder:
    """ImageBind's thermal tower (ViT-B shape, 768-d, 12 blocks) on frames (B, 1, 224, 224)."""
    return _single_channel("imagebind-thermal", embed_dim, depth, num_heads, output_dim, img_size, patch_size,
                           drop_path, grad_checkpointing)


def imagebind_imu(embed_dim: int = 512, depth: int = 6, num_heads: int = 8, output_dim: int = 1024,
                  length: int = 2000, window: int = 8, channels: int = 6, drop_path: float = 0.7,
                  head_dropout: float = 0.5, grad_checkpointing: bool = False) -> ImageBindEncoder:
    """ImageBind's IMU tower (512-d, 6 blocks) on (B, 6, 2000): 250 windows of 8 samples."""
    if length % window:
        raise ValueError(f"imagebind-imu: length {length} is not a multiple of window {window}")
    return ImageBindEncoder(
        "imagebind-imu", WindowPatchStem(embed_dim, channels, length, window),
        _trunk(embed_dim, depth, num_heads, drop_path, grad_checkpointing, bias_kv=True),
        Head(embed_dim, output_dim, dropout=head_dropout), (channels, length))
