"""Contrastive losses: symmetric InfoNCE (default), SigLIP, and the pair cosine-MSE loss."""
from __future__ import annotations

import mmbind

PLUGIN_API = 1  # the mmbind plugin contract this plugin is written for


@mmbind.hookimpl
def register_losses(register):
    register(mmbind.LossSpec(
        "infonce", mmbind.lazy("mmbind_plugins.losses.losses:InfoNCELoss"),
        "symmetric InfoNCE, (CE(a->b) + CE(b->a)) / 2 with labels on the diagonal (CLIP, ImageBind)"))
    register(mmbind.LossSpec(
        "siglip", mmbind.lazy("mmbind_plugins.losses.losses:SigLIPLoss"),
        "sigmoid loss on every pair, labels 2I-1, with a learnable bias (SigLIP)"))
    register(mmbind.LossSpec(
        "pair-cosine-mse", mmbind.lazy("mmbind_plugins.losses.losses:PairCosineMSELoss"),
        "cosine similarity of each pair regressed by MSE to 1 for the same class, 0 otherwise"))
