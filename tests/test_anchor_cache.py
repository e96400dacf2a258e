"""The frozen-anchor cache: a hit is not recomputed; a changed sample or anchor is."""
import json
import tomllib

import numpy as np
import pytest
import torch

from mmbind.training.anchor_cache import AnchorCache
from mmbind.binder import Binder
from mmbind.recipe import parse_recipe
from mmbind.training import Trainer


def toy_recipe(toy_plugin, tmp_path, **bind):
    data = tomllib.loads(toy_plugin.RECIPE.format(run_dir=tmp_path / "run", epochs=1))
    data["anchor"].pop("pretrain")
    data["bind"].update(bind)
    return parse_recipe(data, "toy.toml")


class EncoderCalls:
    """Counts forward calls and encoded rows of a module."""

    def __init__(self, module: torch.nn.Module):
        self.calls = self.rows = 0
        module.register_forward_hook(self)

    def __call__(self, module, args, output):
        self.calls += 1
        self.rows += output.shape[0]


@pytest.fixture(params=["memory", "hdf5"])
def cache_path(request, tmp_path):
    return None if request.param == "memory" else tmp_path / "cache" / "anchor.h5"


def test_hits_are_reused_and_changes_recomputed(toy_plugin, tmp_path, cache_path):
    torch.manual_seed(0)
    binder = Binder(toy_recipe(toy_plugin, tmp_path).binder_config())
    binder.freeze_anchor()
    counter = EncoderCalls(binder.encoders["toy-a"])
    inputs = [x.copy() for x in toy_plugin.toy_clusters(5).splits["train"]["toy-a"].inputs]  # 50 samples
    cache = AnchorCache(cache_path, batch_size=16)

    first = cache.embeddings(binder, inputs)
    assert first.shape == (50, 32) and counter.rows == 50 and cache.last_computed == 50
    np.testing.assert_allclose(first.numpy(), binder.encode(inputs, "toy-a"), rtol=1e-5, atol=1e-6)
    counter.rows = counter.calls = 0

    again = cache.embeddings(binder, inputs)  # a hit: the encoder does not run
    assert counter.calls == 0 and cache.last_computed == 0 and cache.last_hits == 50
    torch.testing.assert_close(again, first)

    inputs[7] = inputs[7] + 1.0  # change one sample: only it is recomputed
    changed = cache.embeddings(binder, inputs)
    assert counter.rows == 1 and cache.last_computed == 1
    assert not torch.allclose(changed[7], first[7])
    torch.testing.assert_close(changed[:7], first[:7])
    counter.rows = 0

    with torch.no_grad():  # change the anchor's weights: everything is recomputed
        next(binder.encoders["toy-a"].parameters()).add_(0.05)
    moved = cache.embeddings(binder, inputs)
    assert counter.rows == 50 and cache.last_computed == 50
    assert not torch.allclose(moved, changed)
    np.testing.assert_allclose(moved.numpy(), binder.encode(inputs, "toy-a"), rtol=1e-5, atol=1e-6)

    if cache_path is not None:  # the file outlives the object: a new run hits it
        import h5py

        counter.rows = 0
        fresh = AnchorCache(cache_path).embeddings(binder, inputs)
        assert counter.rows == 0
        torch.testing.assert_close(fresh, moved)
        with h5py.File(cache_path, "r") as f:
            assert list(f) == [cache.key(binder)]  # the stale anchor's rows were dropped
            assert f[cache.key(binder)]["embeddings"].shape == (50, 32)


def test_duplicate_samples_are_encoded_once(toy_plugin, tmp_path):
    binder = Binder(toy_recipe(toy_plugin, tmp_path).binder_config())
    counter = EncoderCalls(binder.encoders["toy-a"])
    x = np.arange(16, dtype=np.float32)
    table = AnchorCache().embeddings(binder, [x, x.copy(), x + 1])
    assert counter.rows == 2
    torch.testing.assert_close(table[0], table[1])


def test_trainer_reuses_the_cache_file_across_runs(toy_plugin, tmp_path):
    recipe = toy_recipe(toy_plugin, tmp_path, anchor_cache_file="anchor_cache.h5", steps_per_epoch=2)
    Trainer(recipe, progress=False).fit()
    Trainer(recipe, progress=False).fit(overwrite=True)  # same seed, same anchor: every sample is a hit
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    cache = [r for r in records if r["stage"] == "anchor_cache"]
    assert cache == [{"stage": "anchor_cache", "computed": 0, "hits": 400, "seconds": cache[0]["seconds"]}]
    assert (tmp_path / "run" / "anchor_cache.h5").is_file()


def test_augmented_anchor_bypasses_the_cache(toy_plugin, tmp_path):
    recipe = toy_recipe(toy_plugin, tmp_path, augment_anchor=True, steps_per_epoch=3)
    trainer = Trainer(recipe, progress=False)
    torch.manual_seed(0)
    binder = Binder(recipe.binder_config())
    counter = EncoderCalls(binder.encoders["toy-a"])
    binder.freeze_anchor()
    assert trainer.bind(binder).anchor_table is None
    assert counter.calls == 3 and counter.rows == 3 * 32  # the anchor ran on every step's batch
