import numpy as np
import pytest
import torch

import mmbind
from mmbind.binder import Binder
from mmbind.evaluation.metrics import recall_at_k
from mmbind.recipe import parse_recipe
from mmbind.training.trainer import Trainer


def toy_recipe(toy_plugin, tmp_path, epochs=4):
    import tomllib

    text = toy_plugin.RECIPE.format(run_dir=tmp_path / "run", epochs=epochs)
    return parse_recipe(tomllib.loads(text), "toy.toml")


def test_binding_aligns_toy_modalities(toy_plugin, tmp_path):
    recipe = toy_recipe(toy_plugin, tmp_path)
    trainer = Trainer(recipe, progress=False)
    binder = trainer.fit()
    test = trainer.data.splits["test"]
    a = binder.encode(test["toy-a"].inputs, "toy-a")
    b = binder.encode(test["toy-b"].inputs, "toy-b")
    assert a.shape == b.shape == (200, 32) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, rtol=1e-5)
    r1 = recall_at_k(b, test["toy-b"].keys, a, test["toy-a"].keys, ks=(1,))[1]
    assert r1 > 0.8, r1  # chance is 0.1
    assert (tmp_path / "run" / "checkpoints" / "epoch-0004").is_dir()


def test_anchor_stays_frozen_while_binding(toy_plugin, tmp_path):
    recipe = toy_recipe(toy_plugin, tmp_path, epochs=1)
    recipe.pretrain = None
    trainer = Trainer(recipe, progress=False)
    torch.manual_seed(recipe.seed)
    before = Binder(recipe.binder_config()).encoders["toy-a"].state_dict()
    binder = trainer.fit()
    after = binder.encoders["toy-a"].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in binder.encoders["toy-a"].parameters())


def test_save_pretrained_round_trip(toy_plugin, tmp_path):
    recipe = toy_recipe(toy_plugin, tmp_path, epochs=1)
    binder = Trainer(recipe, progress=False).fit()
    binder.save_pretrained(tmp_path / "saved")
    assert {p.name for p in (tmp_path / "saved").iterdir()} == {"config.json", "model.safetensors"}
    loaded = Binder.from_pretrained(tmp_path / "saved")
    x = toy_plugin.toy_clusters(4).splits["test"]["toy-b"].inputs
    np.testing.assert_array_equal(binder.encode(x, "toy-b"), loaded.encode(x, "toy-b"))
    assert loaded.fingerprint() == binder.fingerprint()
    assert loaded.temperature("toy-b") == pytest.approx(binder.temperature("toy-b"))


def test_encode_names_missing_tower(toy_plugin, tmp_path):
    binder = Binder(toy_recipe(toy_plugin, tmp_path).binder_config())
    with pytest.raises(KeyError, match="no 'audio' tower"):
        binder.encode([np.zeros(16)], "audio")


def test_bad_input_names_what_was_expected(toy_plugin, tmp_path):
    binder = Binder(toy_recipe(toy_plugin, tmp_path).binder_config())
    with pytest.raises(mmbind.InputError, match="expected a vector of 16 floats"):
        binder.encode([np.zeros(3)], "toy-b")


def test_learnable_temperature_is_clamped(toy_plugin, tmp_path):
    binder = Binder(toy_recipe(toy_plugin, tmp_path).binder_config())
    with torch.no_grad():
        binder.log_scales["toy-b"].fill_(10.0)
    binder.clamp_logit_scales()
    assert binder.logit_scale("toy-b").item() == pytest.approx(100.0)
    assert binder.temperature("toy-b") == pytest.approx(0.01)


def test_frozen_unaugmented_tower_trains_its_head_on_features_computed_once(toy_plugin, tmp_path):
    recipe = toy_recipe(toy_plugin, tmp_path, epochs=3)
    recipe.towers["toy-b"].freeze_encoder = True
    recipe.towers["toy-b"].augment = False
    trainer = Trainer(recipe, progress=False)
    torch.manual_seed(0)
    binder = trainer.fit()
    assert set(trainer.features) == {"toy-b"}
    inputs = trainer.data.splits["train"]["toy-b"].inputs[:5]
    with torch.no_grad():
        direct = binder.encoders["toy-b"](binder.prepare(inputs, "toy-b"))
    torch.testing.assert_close(trainer.features["toy-b"][:5], direct)
    test = trainer.data.splits["test"]
    a = binder.encode(test["toy-a"].inputs, "toy-a")
    b = binder.encode(test["toy-b"].inputs, "toy-b")
    # a random frozen encoder plus a trained head still aligns far above chance (0.1)
    assert recall_at_k(b, test["toy-b"].keys, a, test["toy-a"].keys, ks=(1,))[1] > 0.5
