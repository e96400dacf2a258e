"""Training options: GradCache accumulation, bf16, gradient checkpointing, frozen towers,
the data-wait share, and augmentation that does not depend on the number of workers."""
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import distributed_worker
import mmbind
from mmbind.binder import Binder
from mmbind.training.gradcache import grad_cache_backward, micro_batches
from mmbind.recipe import parse_recipe
from mmbind.training.trainer import Trainer

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


def ready_trainer(recipe, dropout: bool = True) -> Trainer:
    trainer = Trainer(recipe, progress=False)
    torch.manual_seed(0)
    trainer.binder = Binder(recipe.binder_config())
    trainer.binder.freeze_anchor()
    if not dropout:
        for module in trainer.binder.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    trainer.setup_bind()
    trainer.binder.train()
    return trainer


def first_batch(trainer):
    from mmbind.pairing import pair_index
    from mmbind.training.trainer import BindDataset

    split = trainer.train_split
    pairs = {"toy-b": pair_index(split["toy-a"].keys, split["toy-b"].keys)}
    dataset = BindDataset(trainer.binder, split, with_anchor_input=trainer.cache is None)
    return dataset.collate(dataset.__getitems__(trainer._plan_epoch(0, pairs, steps=1)[0]))


def grads(trainer) -> dict[str, torch.Tensor]:
    named = list(trainer.binder.named_parameters()) + list(trainer.losses.named_parameters())
    return {n: p.grad.clone() for n, p in named if p.grad is not None}


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
        trainer = ready_trainer(recipe_from(toy_plugin, tmp_path, precision=precision), dropout=False)
        losses[precision] = trainer.forward_backward(first_batch(trainer))["toy-b"].item()
        assert all(torch.isfinite(g).all() for g in grads(trainer).values())
    assert np.isfinite(losses["bf16"])
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02)
    binder = Trainer(recipe_from(toy_plugin, tmp_path, precision="bf16", steps_per_epoch=5), progress=False).fit()
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss/toy-b"]) for r in records if r["stage"] == "bind")
    assert binder.encode([np.zeros(16, np.float32)], "toy-b").dtype == np.float32


def test_grad_checkpointing_recomputes_blocks_with_the_same_gradient(seq_plugin, toy_plugin, tmp_path):
    results = {}
    for on in (False, True):
        tower = {"encoder": "toy-b-seqformer", "options": {"grad_checkpointing": on}}
        trainer = ready_trainer(recipe_from(toy_plugin, tmp_path, tower=tower), dropout=False)
        blocks = trainer.binder.encoders["toy-b"].body.blocks
        calls = []
        blocks[0].register_forward_pre_hook(lambda *args: calls.append(1))  # recompute may stop early
        trainer.forward_backward(first_batch(trainer))
        results[on] = grads(trainer), len(calls)
    assert results[False][1] == 1 and results[True][1] == 2  # the checkpointed block ran again in backward
    for key, want in results[False][0].items():
        torch.testing.assert_close(results[True][0][key], want, rtol=1e-5, atol=1e-6, msg=key)


def test_grad_checkpointing_on_an_encoder_without_support_warns(toy_plugin, tmp_path):
    recipe = recipe_from(toy_plugin, tmp_path, steps_per_epoch=1)
    recipe.towers["toy-b"].options["grad_checkpointing"] = True  # the MLP factory would reject it
    trainer = Trainer(recipe, progress=False)
    trainer.binder = Binder(recipe_from(toy_plugin, tmp_path).binder_config())
    with pytest.warns(UserWarning, match="no gradient checkpointing support"):
        trainer._apply_grad_checkpointing()


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


def test_data_wait_share_is_logged_and_workers_do_not_change_the_result(toy_plugin, tmp_path, capsys):
    weights, shares = {}, {}
    for workers in (0, 1):
        recipe = recipe_from(toy_plugin, tmp_path / f"w{workers}", epochs=2, num_workers=workers, steps_per_epoch=6)
        Trainer(recipe, progress=True).fit()
        run = Path(recipe.output_dir)
        weights[workers] = load_file(run / "model" / "model.safetensors")
        records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        shares[workers] = [r["data_wait_share"] for r in records if r["stage"] == "bind_epoch"]
    assert all(len(s) == 2 and all(0.0 <= v < 1.0 for v in s) for s in shares.values())
    assert "data wait" in capsys.readouterr().out
    for key in weights[0]:  # augmentation is seeded per batch, not per loading process
        torch.testing.assert_close(weights[1][key], weights[0][key], rtol=0, atol=0, msg=key)


def test_inputs_of_towers_without_augmentation_are_transformed_once(toy_plugin, tmp_path):
    from mmbind.training.trainer import BindDataset

    recipe = recipe_from(toy_plugin, tmp_path, tower={"augment": False})
    binder = Binder(recipe.binder_config())
    split = toy_plugin.toy_clusters(5).splits["train"]
    loads = []
    for cache_bytes, expected in ((1 << 20, 10), (0, 20)):
        dataset = BindDataset(binder, split, with_anchor_input=True, augment_anchor=True, cache_bytes=cache_bytes)
        load = dataset.loaders["toy-b"]
        dataset.loaders["toy-b"] = lambda x, load=load: loads.append(1) or load(x)
        items = [("toy-b", j, j, 123) for j in range(10)]
        first, again = dataset.__getitems__(items), dataset.__getitems__(items)
        assert len(loads) == expected  # with room in the cache, the second epoch loads nothing
        assert all(torch.equal(a[1], b[1]) for a, b in zip(first, again))
        assert not all(torch.equal(a[4], b[4]) for a, b in zip(first, dataset.__getitems__(
            [(m, j, a, 124) for m, j, a, _ in items])))  # the augmented anchor changes with the seed
        loads.clear()


def test_precomputed_frozen_features_give_the_loss_of_the_full_tower(toy_plugin, tmp_path):
    """A frozen, unaugmented tower trains its head on encoder features computed once; its
    embeddings must still be l2-normalised, so the loss equals the one of the full tower."""
    tower = {"freeze_encoder": True, "augment": False}
    results = {}
    for cached in (True, False):  # anchor_cache = false also turns the precomputation off
        trainer = ready_trainer(recipe_from(toy_plugin, tmp_path, tower=tower, anchor_cache=cached), dropout=False)
        assert set(trainer.features) == ({"toy-b"} if cached else set())
        results[cached] = trainer.forward_backward(first_batch(trainer))["toy-b"].item(), grads(trainer)
    assert results[True][0] == pytest.approx(results[False][0], rel=1e-5)
    for key, want in results[False][1].items():
        torch.testing.assert_close(results[True][1][key], want, rtol=1e-4, atol=1e-6, msg=key)
