"""Contrastive losses: symmetric InfoNCE (default), SigLIP, and the pair cosine-MSE loss."""
from __future__ import annotations

import mmbind


def _loss(class_name: str):
    def factory(**options):
        from mmbind_plugins.losses import losses  # torch loads only when a loss is built

        return getattr(losses, class_name)(**options)

    return factory


@mmbind.hookimpl
def register_losses(register):
    register(mmbind.LossSpec(
        "infonce", _loss("InfoNCELoss"),
        "symmetric InfoNCE, (CE(a->b) + CE(b->a)) / 2 with labels on the diagonal (CLIP, ImageBind)"))
    register(mmbind.LossSpec(
        "siglip", _loss("SigLIPLoss"),
        "sigmoid loss on every pair, labels 2I-1, with a learnable bias (SigLIP)"))
    register(mmbind.LossSpec(
        "pair-cosine-mse", _loss("PairCosineMSELoss"),
        "cosine similarity of each pair regressed by MSE to 1 for the same class, 0 otherwise"))
