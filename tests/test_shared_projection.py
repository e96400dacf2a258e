"""``[bind] shared_projection``: one linear map, the identity at the start, trained with the towers
and applied to every modality's unit embedding, the anchor's included."""
from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F

from mmbind.binder import Binder
from mmbind.evaluation.metrics import recall_at_k
from mmbind.training import Trainer
from mmbind.training.anchor_cache import AnchorCache
from test_core_training import toy_recipe


def projected_recipe(toy_plugin, tmp_path, epochs=2):
    recipe = toy_recipe(toy_plugin, tmp_path, epochs=epochs)
    recipe.bind.shared_projection = True
    return recipe


def test_a_new_projection_is_the_identity_and_changes_nothing(toy_plugin, tmp_path):
    recipe = projected_recipe(toy_plugin, tmp_path)
    torch.manual_seed(0)
    plain = Binder(toy_recipe(toy_plugin, tmp_path).binder_config())
    torch.manual_seed(0)
    projected = Binder(recipe.binder_config())
    assert plain.projection is None and torch.equal(projected.projection.weight, torch.eye(projected.dim))
    x = toy_plugin.toy_clusters(4).splits["test"]["toy-b"].inputs
    np.testing.assert_allclose(projected.encode(x, "toy-b"), plain.encode(x, "toy-b"), atol=1e-6)
    # a binder without one writes no shared_projection key: fingerprints of saved binders stay
    assert "shared_projection" not in plain.config.to_dict()
    assert projected.config.to_dict()["shared_projection"] is True


def test_binding_trains_the_projection_for_every_modality(toy_plugin, tmp_path):
    recipe = projected_recipe(toy_plugin, tmp_path, epochs=4)
    trainer = Trainer(recipe, progress=False)
    binder = trainer.fit()
    weight = binder.projection.weight.detach()
    assert not torch.allclose(weight, torch.eye(binder.dim), atol=1e-3)  # it trained
    assert not any(p.requires_grad for p in binder.encoders["toy-a"].parameters())  # the anchor's tower did not
    test = trainer.data.splits["test"]
    a = binder.encode(test["toy-a"].inputs, "toy-a")
    b = binder.encode(test["toy-b"].inputs, "toy-b")
    assert recall_at_k(b, test["toy-b"].keys, a, test["toy-a"].keys, ks=(1,))[1] > 0.8  # chance is 0.1
    # the anchor's embeddings go through it too; project=False gives the tower's own
    own = binder.encode(test["toy-a"].inputs, "toy-a", project=False)
    np.testing.assert_allclose(a, F.normalize(torch.from_numpy(own) @ weight.T, dim=-1).numpy(), atol=1e-5)
    # it is in each modality's fingerprint, but not in the anchor cache's key: the cache keeps
    # the frozen tower's embeddings, which do not change while the projection trains
    assert binder.fingerprint("toy-a") != binder.fingerprint("toy-a", project=False)
    fresh = Binder(recipe.binder_config())
    fresh.load_state_dict({k: v for k, v in binder.state_dict().items() if not k.startswith("projection.")},
                          strict=False)
    assert AnchorCache().key(fresh) == AnchorCache().key(binder)


def test_a_projected_binder_round_trips(toy_plugin, tmp_path):
    binder = Trainer(projected_recipe(toy_plugin, tmp_path, epochs=1), progress=False).fit()
    binder.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["shared_projection"] is True
    loaded = Binder.from_pretrained(tmp_path / "saved")
    x = toy_plugin.toy_clusters(4).splits["test"]["toy-a"].inputs
    np.testing.assert_array_equal(binder.encode(x, "toy-a"), loaded.encode(x, "toy-a"))
    assert loaded.fingerprint() == binder.fingerprint()
