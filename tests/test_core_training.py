import numpy as np
import pytest
import torch

import mmbind
from mmbind.binder import Binder
from mmbind.evaluation.metrics import recall_at_k
from mmbind.recipe import parse_recipe
from mmbind.training import Trainer
from mmbind.training.optim import warmup_cosine, warmup_cosine_schedule
from mmbind.training.plan import PlanItem, anchor_pairs, bind_plan, pretrain_plan


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
    binder = Binder(recipe.binder_config())
    binder.freeze_anchor()
    stage = trainer.bind(binder)
    assert set(stage.features) == {"toy-b"}
    inputs = trainer.data.splits["train"]["toy-b"].inputs[:5]
    with torch.no_grad():
        direct = binder.encoders["toy-b"](binder.prepare(inputs, "toy-b"))
    torch.testing.assert_close(stage.features["toy-b"][:5], direct)
    test = trainer.data.splits["test"]
    a = binder.encode(test["toy-a"].inputs, "toy-a")
    b = binder.encode(test["toy-b"].inputs, "toy-b")
    # a random frozen encoder plus a trained head still aligns far above chance (0.1)
    assert recall_at_k(b, test["toy-b"].keys, a, test["toy-a"].keys, ks=(1,))[1] > 0.5


def test_warmup_cosine_ramps_up_then_decays_to_zero():
    assert warmup_cosine(0, warmup=5, total=100) == pytest.approx(0.2)
    ramp = [warmup_cosine(s, 5, 100) for s in range(5)]
    assert ramp == sorted(ramp) and ramp[-1] == pytest.approx(0.5 * (1 + np.cos(np.pi * 4 / 100)))
    decay = [warmup_cosine(s, 5, 100) for s in range(4, 101)]
    assert all(a > b for a, b in zip(decay, decay[1:]))
    assert warmup_cosine(50, 5, 100) == pytest.approx(0.5)
    assert warmup_cosine(100, 5, 100) == warmup_cosine(150, 5, 100) == pytest.approx(0.0)
    assert warmup_cosine(0, warmup=0, total=10) == 1.0  # no warm-up


def test_warmup_cosine_schedule_resumes_on_the_same_curve():
    def schedule():
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
        return optimizer, warmup_cosine_schedule(optimizer, warmup=3, total=20)

    optimizer, straight = schedule()
    lrs = []
    for _ in range(20):
        lrs.append(straight.get_last_lr()[0])
        optimizer.step()
        straight.step()
    assert lrs[1] == pytest.approx(0.5 * warmup_cosine(1, 3, 20))
    optimizer, first = schedule()
    for _ in range(7):
        optimizer.step()
        first.step()
    optimizer, resumed = schedule()
    resumed.load_state_dict(first.state_dict())
    again = []
    for _ in range(13):
        again.append(resumed.get_last_lr()[0])
        optimizer.step()
        resumed.step()
    assert again == lrs[7:]


def test_bind_plan_gives_every_step_a_full_batch_of_paired_rows(toy_plugin):
    split = toy_plugin.toy_clusters(5).splits["train"]
    pairs = anchor_pairs(split, "toy-a", ["toy-b"])
    plan = bind_plan(pairs, steps=4, batch_size=8, seed=11)
    assert len(plan) == 4 and all(len(step) == 8 for step in plan)
    for step in plan:
        assert all(isinstance(item, PlanItem) and item.modality == "toy-b" for item in step)
        assert len({item.seed for item in step}) == 1  # one augmentation seed per step
        assert all(item.anchor in pairs["toy-b"][item.sample] for item in step)
    samples = [item.sample for step in plan[:3] for item in step]
    assert len(set(samples)) == len(samples)  # a permutation: no sample twice before all are seen
    assert plan == bind_plan(pairs, steps=4, batch_size=8, seed=11)
    assert plan != bind_plan(pairs, steps=4, batch_size=8, seed=12)


def test_pretrain_plan_sees_every_anchor_sample_once_per_epoch():
    plan = pretrain_plan("toy-a", 50, 16, torch.Generator().manual_seed(0))
    assert [len(step) for step in plan] == [16, 16, 16, 2]
    assert sorted(item.sample for step in plan for item in step) == list(range(50))
    assert all(item.anchor == item.sample for step in plan for item in step)
