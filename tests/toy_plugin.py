"""A fake plugin for core tests: two vector "sensors" observing 10 classes through different
random projections (simulated test data, no real modality). Registered and unregistered by tests."""
from __future__ import annotations

import numpy as np

import mmbind

DIM_IN = 16


def _load(x):
    array = np.asarray(x, dtype=np.float32)
    if array.shape != (DIM_IN,):
        raise mmbind.InputError(f"expected a vector of {DIM_IN} floats, got shape {array.shape}")
    return array


def _transform(train: bool = False, noise: float = 0.1):
    import torch

    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")

    def apply(x):
        t = torch.as_tensor(x)
        return t + noise * torch.randn_like(t) if train else t

    return apply


def _mlp(output_dim: int = 32, hidden: int = 64):
    import torch.nn as nn

    net = nn.Sequential(nn.Linear(DIM_IN, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, output_dim))
    net.output_dim = output_dim
    return net


def toy_clusters(n_per_class: int = 40, seed: int = 0) -> mmbind.BindingData:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, 8))
    splits = {}
    for split, n in (("train", n_per_class), ("test", n_per_class // 2)):
        labels = np.repeat(np.arange(10), n)
        latent = centres[labels] + 0.3 * rng.normal(size=(len(labels), 8))
        samples = {}
        for i, modality in enumerate(("toy-a", "toy-b")):
            projection = np.random.default_rng(100 + i).normal(size=(8, DIM_IN))
            x = (latent @ projection + 0.1 * rng.normal(size=(len(labels), DIM_IN))).astype(np.float32)
            samples[modality] = mmbind.ModalitySamples(list(x), labels.tolist(), [str(c) for c in labels])
        splits[split] = samples
    return mmbind.BindingData(splits, [str(c) for c in range(10)], simulated=frozenset({"toy-a", "toy-b"}))


def toy_a_only(n_per_class: int = 40, seed: int = 0) -> mmbind.BindingData:
    """toy-clusters without toy-b: a base dataset that [[data.add]] can add toy-b to."""
    data = toy_clusters(n_per_class, seed)
    return mmbind.BindingData({split: {"toy-a": samples["toy-a"]} for split, samples in data.splits.items()},
                              data.class_names, simulated=frozenset({"toy-a"}))


@mmbind.hookimpl
def register_modalities(register):
    for name in ("toy-a", "toy-b"):
        register(mmbind.Modality(name, _load, _transform, default_encoder=f"{name}-mlp",
                                 description="simulated vector sensor (tests only)"))


@mmbind.hookimpl
def register_encoders(register):
    for name in ("toy-a", "toy-b"):
        register(mmbind.EncoderSpec(f"{name}-mlp", name, _mlp, "two-layer MLP"))


@mmbind.hookimpl
def register_datasets(register):
    register(mmbind.DatasetSpec("toy-clusters", ("toy-a", "toy-b"), toy_clusters, "simulated clusters"))
    register(mmbind.DatasetSpec("toy-a-only", ("toy-a",), toy_a_only, "simulated clusters, toy-a only"))


RECIPE = """
name = "toy"
seed = 3
output_dir = "{run_dir}"

[data]
dataset = "toy-clusters"

[anchor]
modality = "toy-a"
encoder = "toy-a-mlp"
options = {{ output_dim = 32 }}

[anchor.pretrain]
epochs = 2
batch_size = 64

[modalities.toy-b]
head = "mlp"

[bind]
epochs = {epochs}
batch_size = 32
lr = 3e-3
warmup_steps = 5
"""
