"""A small trained digits run for the explorer's end-to-end tests, made once per machine.

The browser tests need a binder that has learned: sevens for "the number seven", blue 7s for a
red 7 - "red" + "blue", a real English recording next to its digit's phrases. Training one takes
minutes on two cores, so the run is cached like the digits world's data is: under
``$MMBIND_CACHE`` (default ~/.cache/mmbind) in a folder named by the hash of its recipe and the
mmbind version, written to a temporary folder and renamed into place when complete. Delete the
folder to train it again.

The run: the digits world at a reduced size, the image anchor pretrained on digit and colour,
the real MiniLM text tower (frozen, with a trained head) and the audio CNN trained on the English
synthetic clips only (the real recordings the tests drop are English; fewer words to learn make
the audio tower cheap to train). It is a real `mmbind` training run: Trainer, then the embed
stage, as `mmbind run` does them.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

RECIPE = """\
name = "serve-tests"
seed = 0
output_dir = "{run}"

[data]
dataset = "digits-world"
options = {{ n_per_class = 200, audio_per_class = 150, audio_test_per_class = 10 }}

[anchor]
modality = "image"
encoder = "image-digits-cnn"
options = {{ output_dim = 128, width = 16 }}
preprocess = {{ size = 32 }}

[anchor.pretrain]
epochs = 3
batch_size = 128
lr = 3e-3
targets = ["colour"]

[modalities.text]
encoder = "text-minilm-l6"
head = "mlp"
augment = false

[modalities.audio]
encoder = "audio-cnn-tiny"
preprocess = {{ clips = 1, clip_seconds = 1.0, mel_bins = 64, log_floor = -10.0 }}
options = {{ output_dim = 128, convs = 2 }}
temperature = 0.05
loss_options = {{ positives = "label" }}

[bind]
epochs = 10
steps_per_epoch = 20
batch_size = 64
lr = 2e-3

[embed]
split = "test"
"""


def cache_root() -> Path:
    return Path(os.environ.get("MMBIND_CACHE") or Path.home() / ".cache" / "mmbind")


def english_audio_only(data):
    """The data with the training audio reduced to its English clips."""
    import mmbind

    audio = data.splits["train"]["audio"]
    keep = [i for i, meta in enumerate(audio.meta) if meta.get("language") == "en"]
    data.splits["train"]["audio"] = mmbind.ModalitySamples(
        [audio.inputs[i] for i in keep], [audio.labels[i] for i in keep], [audio.keys[i] for i in keep],
        [audio.meta[i] for i in keep])
    return data


def trained_run() -> Path:
    """The run folder (model/, recipe.toml, embeddings.h5), trained on first use."""
    import mmbind

    key = hashlib.sha256(f"{RECIPE}|{mmbind.__version__}".encode()).hexdigest()[:12]
    folder = cache_root() / "test-runs" / f"serve-{key}"
    if (folder / "embeddings.h5").is_file():
        return folder
    import tomllib

    import torch

    from mmbind.recipe import parse_recipe
    from mmbind.store.ingest import embed_split
    from mmbind.training.trainer import Trainer

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        text = RECIPE.format(run=folder)  # the recipe names its final folder
        recipe = parse_recipe(tomllib.loads(text), str(tmp / "recipe.toml"))
        recipe.output_dir = str(tmp)
        torch.manual_seed(recipe.seed)
        data = english_audio_only(mmbind.load_dataset(recipe.dataset, **recipe.dataset_options))
        binder = Trainer(recipe, data=data, progress=False).fit()
        embed_split(binder, data, recipe)
        from mmbind.serve.explorer import Explorer

        Explorer(tmp / "embeddings.h5", binder, map_method="umap").close()  # the map, saved in the store
        (tmp / "recipe.toml").write_text(text)
        shutil.rmtree(tmp / "checkpoints", ignore_errors=True)
        os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
