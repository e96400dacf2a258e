"""A small fake plugin for the evaluation and report tests (simulated test data, no real modality).

Four "fw-" modalities observe ten classes: an anchor vector sensor, a text-like modality (word
strings hashed into a bag of words, so zero-shot prompts work), and two simulated sensors, one
with a held-out "real" split carrying speaker/language meta. Register it with ``registered()``.
"""
from __future__ import annotations

import contextlib
import zlib

import numpy as np

import mmbind

DIM_IN = 16
VOCAB = 64
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
PHRASES = ["{}", "the number {}", "digit {}", "{} please"]
SENSORS = ("fw-image", "fw-audio", "fw-depth")


def _load_vector(x):
    array = np.asarray(x, dtype=np.float32)
    if array.shape != (DIM_IN,):
        raise mmbind.InputError(f"expected a vector of {DIM_IN} floats, got shape {array.shape}")
    return array


def _load_text(x):
    if not isinstance(x, str):
        raise mmbind.InputError(f"expected a string, got {type(x).__name__}")
    return x


def _vector_transform(train: bool = False, noise: float = 0.1):
    import torch

    def apply(x):
        t = torch.as_tensor(x)
        return t + noise * torch.randn_like(t) if train else t

    return apply


def _text_transform(train: bool = False):
    import torch

    def apply(text: str):
        bag = torch.zeros(VOCAB)
        for word in text.lower().split():
            bag[zlib.crc32(word.encode()) % VOCAB] += 1.0
        return bag

    return apply


def _mlp(input_dim: int = DIM_IN, output_dim: int = 32, hidden: int = 64):
    import torch.nn as nn

    net = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Linear(hidden, output_dim))
    net.output_dim = output_dim
    return net


def _text_mlp(output_dim: int = 32, hidden: int = 64):
    return _mlp(VOCAB, output_dim, hidden)


def fake_world(n_per_class: int = 30, seed: int = 0) -> mmbind.BindingData:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, 8))
    projections = {m: np.random.default_rng(100 + i).normal(size=(8, DIM_IN)) for i, m in enumerate(SENSORS)}

    def sensor(modality, labels, noise):
        latent = centres[labels] + noise * rng.normal(size=(len(labels), 8))
        x = latent @ projections[modality] + 0.1 * rng.normal(size=(len(labels), DIM_IN))
        return list(x.astype(np.float32))

    splits = {}
    for split, n in (("train", n_per_class), ("test", n_per_class // 2)):
        labels = np.repeat(np.arange(10), n)
        samples = {}
        for m in SENSORS:
            keys = [f"{c}/{'red' if i % 2 else 'blue'}" if m == "fw-image" else str(c)
                    for i, c in enumerate(labels)]
            samples[m] = mmbind.ModalitySamples(sensor(m, labels, 0.3), labels.tolist(), keys)
        text = [PHRASES[i % len(PHRASES)].format(WORDS[c]) for i, c in enumerate(labels)]
        samples["fw-text"] = mmbind.ModalitySamples(text, labels.tolist(), [str(c) for c in labels])
        splits[split] = samples
    real_labels = np.tile(np.arange(10), 4)
    meta = [{"speaker": f"s{i // 10}", "language": "en" if i < 20 else "es"} for i in range(len(real_labels))]
    splits["real"] = {"fw-audio": mmbind.ModalitySamples(
        sensor("fw-audio", real_labels, 0.5), real_labels.tolist(), [str(c) for c in real_labels], meta)}
    return mmbind.BindingData(splits, WORDS, simulated=frozenset({"fw-audio", "fw-depth"}),
                              description="fake world for evaluation tests (simulated)")


class Plugin:
    @staticmethod
    @mmbind.hookimpl
    def register_modalities(register):
        for name in SENSORS:
            register(mmbind.Modality(name, _load_vector, _vector_transform, default_encoder=f"{name}-mlp",
                                     description="simulated vector sensor (tests only)"))
        register(mmbind.Modality("fw-text", _load_text, _text_transform, default_encoder="fw-text-bow",
                                 description="bag-of-words text (tests only)"))

    @staticmethod
    @mmbind.hookimpl
    def register_encoders(register):
        for name in SENSORS:
            register(mmbind.EncoderSpec(f"{name}-mlp", name, _mlp, "two-layer MLP"))
        register(mmbind.EncoderSpec("fw-text-bow", "fw-text", _text_mlp, "MLP on a hashed bag of words"))

    @staticmethod
    @mmbind.hookimpl
    def register_datasets(register):
        register(mmbind.DatasetSpec("fake-world", ("fw-image", "fw-text", "fw-audio", "fw-depth"),
                                    fake_world, "simulated fake world (tests only)"))


@contextlib.contextmanager
def registered():
    from mmbind.plugin import manager as plugins

    if plugins.pm.has_plugin("fake-world"):  # nested use (a module fixture already registered it)
        yield
        return
    plugins.pm.register(Plugin, name="fake-world")
    plugins.reset()
    try:
        yield
    finally:
        plugins.pm.unregister(name="fake-world")
        plugins.reset()


RECIPE = """
name = "fake"
seed = 1
output_dir = "{run_dir}"

[data]
dataset = "fake-world"

[anchor]
modality = "fw-image"
encoder = "fw-image-mlp"
options = {{ output_dim = 32 }}

[anchor.pretrain]
epochs = 3
batch_size = 64

[modalities.fw-text]
[modalities.fw-audio]
[modalities.fw-depth]
learn_temperature = false
temperature = 0.1

[bind]
epochs = {epochs}
batch_size = 32
lr = 3e-3
warmup_steps = 5

[eval]
split = "test"
extra_splits = ["real"]
templates = ["{{}}", "the number {{}}"]
supervised_baselines = {supervised}
"""


def recipe(run_dir, epochs: int = 4, supervised: bool = True):
    import tomllib

    from mmbind.recipe import parse_recipe

    text = RECIPE.format(run_dir=run_dir, epochs=epochs, supervised=str(supervised).lower())
    return parse_recipe(tomllib.loads(text), str(run_dir) + ".toml")


@contextlib.contextmanager
def one_thread():
    """Tiny models on a busy 2-core machine: one torch thread avoids spinning on a busy core
    (a 3k-parameter MLP step took 0.2 s with two threads under load, 1 ms with one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(run_dir, epochs: int = 4, supervised: bool = True):
    """Train the fake world into ``run_dir`` (as the pipeline would, with its recipe.toml copy)."""
    from pathlib import Path

    from mmbind.training.trainer import Trainer

    run = recipe(run_dir, epochs, supervised)
    trainer = Trainer(run, progress=False)
    binder = trainer.fit()
    Path(run_dir, "recipe.toml").write_text(
        RECIPE.format(run_dir=run_dir, epochs=epochs, supervised=str(supervised).lower()))
    return run, binder, trainer.data
