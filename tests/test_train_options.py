"""Training options: GradCache accumulation, bf16, gradient checkpointing, frozen towers,
the data-wait share, and augmentation that does not depend on the number of workers."""
import json
import logging
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import distributed_worker
import mmbind
from distributed_worker import first_batch, grads, ready_stage
from mmbind.binder import Binder
from mmbind.recipe import parse_recipe
from mmbind.training import BindDataset, Trainer
from mmbind.training.gradcache import grad_cache_backward, micro_batches
from mmbind.training.plan import PlanItem
from mmbind.training.trainer import apply_grad_checkpointing

SEQ_DIM = 4  # a toy-b vector of 16 floats read as 4 tokens of 4 values


def _seq_encoder(output_dim: int = 32, grad_checkpointing: bool = False):
    import torch.nn as nn

    from mmbind.nn import SequenceTransformer

    class TokensOfVector(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = SequenceTransformer(SEQ_DIM, embed_dim=32, depth=2, num_heads=2, output_dim=output_dim,
                                            max_len=8, grad_checkpointing=grad_checkpointing)
            self.output_dim = output_dim

        def forward(self, x):
            return self.body(x.view(x.shape[0], -1, SEQ_DIM))

    return TokensOfVector()


class SeqPlugin:
    @mmbind.hookimpl
    def register_encoders(self, register):
        register(mmbind.EncoderSpec("toy-b-seqformer", "toy-b", _seq_encoder, "timm blocks over 4 tokens (tests)"))


@pytest.fixture
def seq_plugin(toy_plugin):
    from mmbind.plugin import manager as plugins

    plugins.pm.register(SeqPlugin(), name="toy-seq")
    plugins.reset()
    yield
    plugins.pm.unregister(name="toy-seq")
    plugins.reset()


def recipe_from(toy_plugin, tmp_path, epochs=1, pretrain=False, tower=None, **bind):
    data = tomllib.loads(toy_plugin.RECIPE.format(run_dir=tmp_path / "run", epochs=epochs))
    if not pretrain:
        data["anchor"].pop("pretrain")
    data["modalities"]["toy-b"].update(tower or {})
    data["bind"].update(bind)
    return parse_recipe(data, "toy.toml")


@pytest.fixture
def mmbind_log(caplog):
    """caplog receiving the "mmbind" logger's INFO records (the CLI's configure stops their propagation)."""
    logger = logging.getLogger("mmbind")
    saved = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # caplog's handler also sits on the root logger: one copy of each record
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(saved[0])
    logger.propagate = saved[1]


@pytest.mark.parametrize("loss,options,k", [("infonce", {}, 4), ("infonce", {"positives": "label"}, 2),
                                             ("siglip", {}, 3)])
def test_grad_cache_gives_the_full_batch_gradient(toy_plugin, tmp_path, loss, options, k):
    full = distributed_worker.one_step(tmp_path, 64, loss, options, 1, "mlp")
    cached = distributed_worker.one_step(tmp_path, 64, loss, options, k, "mlp")
    assert full.keys() == cached.keys() and len(full) > 5
    for key in full:
        torch.testing.assert_close(cached[key], full[key], rtol=1e-4, atol=1e-6, msg=key)


def test_grad_cache_replays_dropout_masks():
    """With dropout on, GradCache's gradient equals that of one graph over the same micro-batches
    with the same RNG stream: the recomputed features are the cached ones."""
    torch.manual_seed(1)
    tower = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 4))
    x, anchor = torch.randn(12, 8), torch.nn.functional.normalize(torch.randn(12, 4), dim=-1)

    def loss_fn(z):
        logits = 10 * torch.nn.functional.normalize(z, dim=-1) @ anchor.T
        return torch.nn.functional.cross_entropy(logits, torch.arange(12))

    torch.manual_seed(7)
    loss_fn(torch.cat([tower(rows) for _, _, rows in micro_batches(x, 3)])).backward()
    reference = [p.grad.clone() for p in tower.parameters()]
    tower.zero_grad()
    torch.manual_seed(7)
    grad_cache_backward(tower, x, loss_fn, 3, torch.device("cpu"))
    for got, want in zip((p.grad for p in tower.parameters()), reference):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_micro_batches_split_every_batch_kind():
    batch = {"x": torch.arange(10), "pair": (torch.arange(10), torch.ones(10)), "text": list("abcdefghij")}
    parts = micro_batches(batch, 3)
    assert [(a, b) for a, b, _ in parts] == [(0, 3), (3, 7), (7, 10)]
    assert parts[1][2]["text"] == list("defg") and parts[1][2]["pair"][0].tolist() == [3, 4, 5, 6]
    assert len(micro_batches(torch.zeros(2, 3), 4)) == 2  # never an empty micro-batch


def test_bf16_autocast_loss_is_finite_and_close_to_fp32(toy_plugin, tmp_path):
    losses = {}
    for precision in ("fp32", "bf16"):
        stage = ready_stage(recipe_from(toy_plugin, tmp_path, precision=precision), dropout=False)
        losses[precision] = stage.forward_backward(first_batch(stage))["toy-b"].item()
        assert all(torch.isfinite(g).all() for g in grads(stage).values())
    assert np.isfinite(losses["bf16"])
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02)
    # overwrite: the stages above already logged into the run folder
    binder = Trainer(recipe_from(toy_plugin, tmp_path, precision="bf16", steps_per_epoch=5),
                     progress=False).fit(overwrite=True)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss/toy-b"]) for r in records if r["stage"] == "bind")
    assert binder.encode([np.zeros(16, np.float32)], "toy-b").dtype == np.float32


def test_grad_checkpointing_recomputes_blocks_with_the_same_gradient(seq_plugin, toy_plugin, tmp_path):
    results = {}
    for on in (False, True):
        tower = {"encoder": "toy-b-seqformer", "options": {"grad_checkpointing": on}}
        stage = ready_stage(recipe_from(toy_plugin, tmp_path, tower=tower), dropout=False)
        blocks = stage.binder.encoders["toy-b"].body.blocks
        calls = []
        blocks[0].register_forward_pre_hook(lambda *args: calls.append(1))  # recompute may stop early
        stage.forward_backward(first_batch(stage))
        results[on] = grads(stage), len(calls)
    assert results[False][1] == 1 and results[True][1] == 2  # the checkpointed block ran again in backward
    for key, want in results[False][0].items():
        torch.testing.assert_close(results[True][0][key], want, rtol=1e-5, atol=1e-6, msg=key)


def test_grad_checkpointing_on_an_encoder_without_support_warns(toy_plugin, tmp_path, mmbind_log):
    recipe = recipe_from(toy_plugin, tmp_path, steps_per_epoch=1)
    recipe.towers["toy-b"].options["grad_checkpointing"] = True  # the MLP factory would reject it
    binder = Binder(recipe_from(toy_plugin, tmp_path).binder_config())
    apply_grad_checkpointing(binder, recipe)
    warnings = [r for r in mmbind_log.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "toy-b" in warnings[0].getMessage()
    assert "no gradient checkpointing support" in warnings[0].getMessage()


def test_frozen_tower_keeps_its_encoder_and_trains_its_head(toy_plugin, tmp_path):
    recipe = recipe_from(toy_plugin, tmp_path, tower={"freeze_encoder": True}, steps_per_epoch=5)
    torch.manual_seed(recipe.seed)
    initial = Binder(recipe.binder_config()).state_dict()
    binder = Trainer(recipe, progress=False).fit()
    trained = binder.state_dict()
    encoder = [k for k in initial if k.startswith("encoders.toy-b.")]
    head = [k for k in initial if k.startswith("heads.toy-b.")]
    assert encoder and head
    assert all(torch.equal(initial[k], trained[k]) for k in encoder)
    assert not all(torch.equal(initial[k], trained[k]) for k in head)
    assert not any(p.requires_grad for p in binder.encoders["toy-b"].parameters())


def test_data_wait_share_is_logged_and_workers_do_not_change_the_result(toy_plugin, tmp_path, mmbind_log):
    weights, shares = {}, {}
    for workers in (0, 1):
        recipe = recipe_from(toy_plugin, tmp_path / f"w{workers}", epochs=2, num_workers=workers, steps_per_epoch=6)
        Trainer(recipe, progress=False).fit()
        run = Path(recipe.output_dir)
        weights[workers] = load_file(run / "model" / "model.safetensors")
        records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        shares[workers] = [r["data_wait_share"] for r in records if r["stage"] == "bind_epoch"]
    assert all(len(s) == 2 and all(0.0 <= v < 1.0 for v in s) for s in shares.values())
    lines = [r.getMessage() for r in mmbind_log.records if r.name == "mmbind.training.metrics"]
    assert sum(line.startswith("bind epoch 2/2: 6 steps in ") and "data wait" in line for line in lines) == 2
    for key in weights[0]:  # augmentation is seeded per batch, not per loading process
        torch.testing.assert_close(weights[1][key], weights[0][key], rtol=0, atol=0, msg=key)


def test_inputs_of_towers_without_augmentation_are_transformed_once(toy_plugin, tmp_path):
    recipe = recipe_from(toy_plugin, tmp_path, tower={"augment": False})
    binder = Binder(recipe.binder_config())
    split = toy_plugin.toy_clusters(5).splits["train"]
    loads = []
    for cache_bytes, expected in ((1 << 20, 10), (0, 20)):
        dataset = BindDataset(binder, split, with_anchor_input=True, augment_anchor=True, cache_bytes=cache_bytes)
        load = dataset.loaders["toy-b"]
        dataset.loaders["toy-b"] = lambda x, load=load: loads.append(1) or load(x)
        items = [PlanItem("toy-b", j, j, 123) for j in range(10)]
        first, again = dataset.__getitems__(items), dataset.__getitems__(items)
        assert len(loads) == expected  # with room in the cache, the second epoch loads nothing
        assert all(torch.equal(a.inputs, b.inputs) for a, b in zip(first, again))
        assert not all(torch.equal(a.anchor_input, b.anchor_input) for a, b in zip(first, dataset.__getitems__(
            [item._replace(seed=124) for item in items])))  # the augmented anchor changes with the seed
        loads.clear()


def test_precomputed_frozen_features_give_the_loss_of_the_full_tower(toy_plugin, tmp_path):
    """A frozen, unaugmented tower trains its head on encoder features computed once; its
    embeddings must still be l2-normalised, so the loss equals the one of the full tower."""
    tower = {"freeze_encoder": True, "augment": False}
    results = {}
    for cached in (True, False):  # anchor_cache = false also turns the precomputation off
        stage = ready_stage(recipe_from(toy_plugin, tmp_path, tower=tower, anchor_cache=cached), dropout=False)
        assert set(stage.features) == ({"toy-b"} if cached else set())
        results[cached] = stage.forward_backward(first_batch(stage))["toy-b"].item(), grads(stage)
    assert results[True][0] == pytest.approx(results[False][0], rel=1e-5)
    for key, want in results[False][1].items():
        torch.testing.assert_close(results[True][1][key], want, rtol=1e-4, atol=1e-6, msg=key)
