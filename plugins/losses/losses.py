"""One small class per loss, OpenCLIP-style. Inputs are unit vectors (B, D); under
torch.distributed the features are gathered with their gradient so negatives span the global batch."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmbind.distributed import gather_with_grad, rank


class InfoNCELoss(nn.Module):
    """Symmetric InfoNCE: mean of the cross-entropies anchor->other and other->anchor.

    Local-loss form (OpenCLIP): local features against the gathered global features, labels
    offset by rank * local batch; identical to the single-process loss on the global batch.

    ``positives="pair"`` (default, CLIP and ImageBind): only the pair itself is a positive.
    ``positives="label"``: every pair in the batch that shares the class label is a positive, with
    the target mass spread evenly over them (UniCL / SupCon targets). For data paired by concept,
    as in the digits world, the other samples of the same concept are not negatives, and treating
    them so makes the gradient noisy.
    """

    def __init__(self, positives: str = "pair"):
        super().__init__()
        if positives not in ("pair", "label"):
            raise ValueError(f"infonce option positives={positives!r}: expected 'pair' or 'label'")
        self.positives = positives

    def forward(self, anchor, other, logit_scale, labels=None):
        all_anchor, all_other = gather_with_grad(anchor), gather_with_grad(other)
        logits_a = logit_scale * anchor @ all_other.T
        logits_o = logit_scale * other @ all_anchor.T
        if self.positives == "label":
            if labels is None:
                raise ValueError("infonce with positives='label' needs the batch's class labels")
            same = (labels[:, None] == gather_with_grad(labels)[None, :]).to(logits_a.dtype)
            targets = same / same.sum(dim=1, keepdim=True)
        else:
            targets = torch.arange(anchor.shape[0], device=anchor.device) + rank() * anchor.shape[0]
        return (F.cross_entropy(logits_a, targets) + F.cross_entropy(logits_o, targets)) / 2


class SigLIPLoss(nn.Module):
    """Sigmoid loss on every (anchor, other) pair with labels 2I - 1 and a learnable bias."""

    def __init__(self, bias_init: float = -10.0):
        super().__init__()
        self.logit_bias = nn.Parameter(torch.tensor(float(bias_init)))

    def forward(self, anchor, other, logit_scale, labels=None):
        all_other = gather_with_grad(other)
        logits = logit_scale * anchor @ all_other.T + self.logit_bias
        signs = -torch.ones_like(logits)
        offset = rank() * anchor.shape[0]
        idx = torch.arange(anchor.shape[0], device=anchor.device)
        signs[idx, idx + offset] = 1.0
        return -F.logsigmoid(signs * logits).sum() / anchor.shape[0]


class PairCosineMSELoss(nn.Module):
    """The classic MNIST contrastive tutorial's loss: cos(a_i, b_j) regressed by MSE to 1 when
    i and j share a class and 0 otherwise (the diagonal when no labels are given)."""

    def forward(self, anchor, other, logit_scale=None, labels=None):
        all_other = gather_with_grad(other)
        sims = anchor @ all_other.T
        if labels is None:
            offset = rank() * anchor.shape[0]
            target = torch.zeros_like(sims)
            idx = torch.arange(anchor.shape[0], device=anchor.device)
            target[idx, idx + offset] = 1.0
        else:
            all_labels = gather_with_grad(labels)
            target = (labels[:, None] == all_labels[None, :]).to(sims.dtype)
        return F.mse_loss(sims, target)

