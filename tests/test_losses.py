"""Each loss against a value computed by hand on a tiny batch."""
import math

import pytest
import torch

import mmbind

A = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
B = torch.tensor([[1.0, 0.0], [0.6, 0.8]])


def lse(*xs):
    return math.log(sum(math.exp(x) for x in xs))


def test_infonce_is_the_mean_of_both_cross_entropies():
    s = 2.0
    # a @ b.T = [[1, .6], [0, .8]];  b @ a.T = [[1, 0], [.6, .8]]
    a_to_b = ((lse(s * 1, s * .6) - s * 1) + (lse(0, s * .8) - s * .8)) / 2
    b_to_a = ((lse(s * 1, 0) - s * 1) + (lse(s * .6, s * .8) - s * .8)) / 2
    loss = mmbind.create_loss("infonce")(A, B, torch.tensor(s))
    assert loss.item() == pytest.approx((a_to_b + b_to_a) / 2, rel=1e-6)


def test_infonce_with_label_positives_spreads_the_target_over_same_class_pairs():
    s = 2.0
    labels = torch.tensor([3, 3])  # both pairs share the class: each row's target is [1/2, 1/2]
    # rows of a @ b.T = [[1, .6], [0, .8]] and of b @ a.T = [[1, 0], [.6, .8]]
    soft = lambda row: lse(*(s * x for x in row)) - sum(s * x for x in row) / 2
    expected = (soft([1, .6]) + soft([0, .8]) + soft([1, 0]) + soft([.6, .8])) / 4
    loss = mmbind.create_loss("infonce", positives="label")(A, B, torch.tensor(s), labels)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # with distinct labels it is plain InfoNCE
    plain = mmbind.create_loss("infonce")(A, B, torch.tensor(s))
    distinct = mmbind.create_loss("infonce", positives="label")(A, B, torch.tensor(s), torch.tensor([0, 1]))
    assert distinct.item() == pytest.approx(plain.item(), rel=1e-6)
    with pytest.raises(ValueError, match="positives"):
        mmbind.create_loss("infonce", positives="class")
    with pytest.raises(ValueError, match="labels"):
        mmbind.create_loss("infonce", positives="label")(A, B, torch.tensor(s))


def test_siglip_sums_log_sigmoid_over_every_pair():
    s, bias = 3.0, -1.0
    sims = [[1, .6], [0, .8]]
    log_sigmoid = lambda x: -math.log1p(math.exp(-x))
    expected = -sum(log_sigmoid((1 if i == j else -1) * (s * sims[i][j] + bias))
                    for i in range(2) for j in range(2)) / 2
    loss = mmbind.create_loss("siglip", bias_init=bias)(A, B, torch.tensor(s))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert loss.requires_grad  # the bias is learnable


def test_pair_cosine_mse_regresses_to_class_equality():
    sims = [[1, .6], [0, .8]]
    loss_fn = mmbind.create_loss("pair-cosine-mse")
    diagonal = ((1 - 1) ** 2 + .6 ** 2 + 0 ** 2 + (.8 - 1) ** 2) / 4
    assert loss_fn(A, B, None).item() == pytest.approx(diagonal, rel=1e-6)
    same_class = ((1 - 1) ** 2 + (.6 - 1) ** 2 + (0 - 1) ** 2 + (.8 - 1) ** 2) / 4
    assert loss_fn(A, B, None, torch.tensor([4, 4])).item() == pytest.approx(same_class, rel=1e-6)
