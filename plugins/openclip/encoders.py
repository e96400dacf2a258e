"""OpenCLIP's image and text towers as mmbind encoders.

Each keeps only its half of the CLIP model (the image tower ``model.visual``; the text tower the
model without ``visual``), so a CLIP pair in one binder holds every weight once. Outputs are
OpenCLIP's ``encode_image`` / ``encode_text`` before normalisation (the binder normalises).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

from mmbind_plugins.image.transforms import CLIP_MEAN, CLIP_STD
from mmbind_plugins.text.encoders import as_texts

SCHEMAS = ("local-dir:", "hf-hub:")


def create_clip(model: str, pretrained: str | bool = True) -> nn.Module:
    """An OpenCLIP model: ``model`` a built-in name with ``pretrained`` a tag or a checkpoint
    file (False: random init), or a "local-dir:"/"hf-hub:" source that carries its weights
    (loaded unless ``pretrained`` is False)."""
    import open_clip

    if model.startswith(SCHEMAS):
        return open_clip.create_model(model, load_weights=pretrained is not False)
    if pretrained is True:
        raise ValueError(f"openclip model {model!r}: set options.pretrained to a checkpoint file or an OpenCLIP tag "
                         f"({', '.join(open_clip.list_pretrained_tags_by_model(model)) or 'none known'}), "
                         f"or pretrained = false for a random init")
    return open_clip.create_model(model, pretrained=pretrained or None)


def _embed_dim(clip: nn.Module) -> int:
    for tower in (getattr(clip, "visual", None), getattr(clip, "text", None)):
        if isinstance(getattr(tower, "output_dim", None), int):
            return tower.output_dim
    projection = clip.text_projection
    return int(projection.out_features if isinstance(projection, nn.Linear) else projection.shape[-1])


class OpenCLIPImageEncoder(nn.Module):
    """(B, 3, S, S) images normalised with CLIP's mean/std (the image modality's output) ->
    ``encode_image``; inputs are renormalised when the model was trained with other statistics."""

    def __init__(self, visual: nn.Module, output_dim: int) -> None:
        super().__init__()
        from mmbind_plugins.image.encoders import Renormalize

        self.visual = visual
        self.output_dim = int(output_dim)
        config = getattr(visual, "preprocess_cfg", {}) or {}
        mean, std = tuple(config.get("mean", CLIP_MEAN)), tuple(config.get("std", CLIP_STD))
        self.normalize = Renormalize(CLIP_MEAN, CLIP_STD, mean, std) if (mean, std) != (CLIP_MEAN, CLIP_STD) \
            else nn.Identity()
        size = getattr(visual, "image_size", None)
        self.image_size = tuple(size) if isinstance(size, (tuple, list)) else (size, size) if size else None

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.visual.set_grad_checkpointing(enable)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.image_size and tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(f"image-openclip takes {self.image_size[0]}x{self.image_size[1]} images, got "
                             f"{tuple(images.shape[-2:])}: set the tower's preprocess size = {self.image_size[0]}")
        return self.visual(self.normalize(images))


class OpenCLIPTextEncoder(nn.Module):
    """Token ids (B, L) -> ``encode_text``; ``collate`` tokenises a batch of texts with the
    model's tokenizer, so ``forward`` sees tensors only and the tower can be exported."""

    def __init__(self, clip: nn.Module, tokenizer: Any, output_dim: int) -> None:
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self.output_dim = int(output_dim)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        text = getattr(self.clip, "text", None) or self.clip.transformer  # CustomTextCLIP or CLIP
        if hasattr(text, "set_grad_checkpointing"):
            text.set_grad_checkpointing(enable)
        else:
            text.grad_checkpointing = enable

    def collate(self, texts: Sequence[str]) -> torch.Tensor:
        """Tokenise a batch of texts with the model's tokenizer: the encoder's input, (B, L) ids."""
        return self.tokenizer(as_texts(texts))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_text(tokens)


def openclip_image(model: str, pretrained: str | bool = True, grad_checkpointing: bool = False) -> OpenCLIPImageEncoder:
    """OpenCLIP's image tower; the text half of the model is dropped."""
    clip = create_clip(model, pretrained)
    encoder = OpenCLIPImageEncoder(clip.visual, _embed_dim(clip))
    if grad_checkpointing:
        encoder.set_grad_checkpointing(True)
    return encoder


def openclip_text(model: str, pretrained: str | bool = True, grad_checkpointing: bool = False) -> OpenCLIPTextEncoder:
    """OpenCLIP's text tower with the model's tokenizer; the image half of the model is dropped."""
    import open_clip

    clip = create_clip(model, pretrained)
    dim = _embed_dim(clip)
    clip.visual = None
    encoder = OpenCLIPTextEncoder(clip, open_clip.get_tokenizer(model), dim)
    if grad_checkpointing:
        encoder.set_grad_checkpointing(True)
    return encoder
