"""Cheap fine-tuning of a pretrained tower (mmbind.finetune) and binders made from a base
(mmbind.derived): a small ImageBind import is the base, the digits world the data.

- LoRA (peft): only the adapters train; the base's weights are unchanged after training; the
  trained binder saves only the adapters beside a reference to its base and loads back to the
  same outputs; a missing or altered base is refused.
- train_last_blocks: the blocks before the last N (and the stem) are unchanged, frozen parts
  run in eval mode.
- Recipe errors name the field.
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open

import imagebind_reference as ib
from mmbind import Binder
from mmbind.errors import CheckpointError
from mmbind.finetune import find_blocks, is_adapter
from mmbind.recipe import RecipeError, parse_recipe
from mmbind.training.trainer import Trainer

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A small random ImageBind (vision, text, depth) imported by mmbind: the base binder."""
    return ib.small_import(tmp_path_factory.mktemp("base") / "imagebind")


def recipe(base, data_options, run_dir, **towers):
    table = {"name": "tune", "seed": 0, "output_dir": str(run_dir), "base": str(base),
             "data": {"dataset": "digits-world", "options": data_options},
             "anchor": {"modality": "image"}, "modalities": towers,
             "bind": {"epochs": 1, "steps_per_epoch": 3, "batch_size": 8, "lr": 0.05, "warmup_steps": 0}}
    return parse_recipe(table, "tune.toml")


def tensors(path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def test_lora_trains_only_adapters_and_saves_them_beside_its_base(base, small_digits_world, tmp_path):
    lora = {"rank": 4, "alpha": 8, "target_modules": ["qkv", "attn.proj"]}
    binder = Trainer(recipe(base, small_digits_world, tmp_path / "run", depth={"lora": lora, "augment": False}),
                     progress=False).fit()
    original = tensors(base / "model.safetensors")
    state = binder.state_dict()
    adapters = sorted(k for k in state if is_adapter(k))
    assert adapters and all(k.startswith("encoders.depth.") for k in adapters)
    # every weight of the base, LoRA'd layers included, is unchanged after training
    for key, value in state.items():
        if not is_adapter(key):
            assert torch.equal(value, original[key.replace(".base_layer.", ".")]), key
    assert any(state[k].abs().sum() > 0 for k in adapters if ".lora_B." in k)  # B starts at zero

    folder = tmp_path / "run" / "model"
    saved = tensors(folder / "model.safetensors")
    assert sorted(saved) == adapters  # only the adapters (depth's head and tau are ImageBind's, fixed)
    config = json.loads((folder / "config.json").read_text())
    assert config["base"]["path"] == str(base.resolve()) and len(config["base"]["sha256"]) == 64
    assert config["towers"]["depth"]["lora"] == lora
    assert (folder / "model.safetensors").stat().st_size < (base / "model.safetensors").stat().st_size / 20

    data = torch.randn(3, 1, 224, 224, generator=torch.Generator().manual_seed(0))
    loaded = Binder.from_pretrained(folder)
    before = Binder.from_pretrained(base)
    with torch.no_grad():
        binder.eval()
        trained, again, untuned = binder(data, "depth"), loaded(data, "depth"), before(data, "depth")
        assert torch.equal(loaded(data, "depth"), again)
    torch.testing.assert_close(again, trained, rtol=0, atol=1e-6)
    assert (trained - untuned).abs().max() > 1e-4  # the adapters change the tower

    moved = tmp_path / "moved"
    shutil.copytree(base, moved)
    torch.testing.assert_close(Binder.from_pretrained(folder, base=moved)(data, "depth"), trained, rtol=0, atol=1e-6)
    other = ib.small_import(tmp_path / "other", seed=1)
    with pytest.raises(CheckpointError, match="is not the binder it was made from"):
        Binder.from_pretrained(folder, base=other)
    with pytest.raises(CheckpointError, match="its base binder .* is missing"):
        Binder.from_pretrained(folder, base=tmp_path / "nowhere")


def test_last_blocks_train_and_the_rest_stays_as_loaded(base, small_digits_world, tmp_path):
    run = recipe(base, small_digits_world, tmp_path / "run", text={"train_last_blocks": 1, "augment": False})
    binder = Trainer(run, progress=False).fit()
    original = tensors(base / "model.safetensors")
    name, blocks = find_blocks(binder.encoders["text"])
    assert name == "trunk.blocks" and len(blocks) == 2
    changed = {k for k, v in binder.state_dict().items() if not torch.equal(v, original[k])}
    assert changed and all(k.startswith(("encoders.text.trunk.blocks.1.", "encoders.text.head.", "log_scales.text"))
                           for k in changed)
    assert any(k.startswith("encoders.text.trunk.blocks.1.") for k in changed)
    assert set(tensors(tmp_path / "run" / "model" / "model.safetensors")) == changed
    binder.train()
    assert not binder.encoders["text"].stem.training and not blocks[0].training
    assert blocks[1].training and binder.encoders["text"].head.training
    assert not binder.encoders["image"].training


def test_a_new_tower_from_a_base_is_built_and_bound(base, small_digits_world, tmp_path):
    towers = {"digits": {"encoder": "digits-cnn", "preprocess": {"size": 16}, "options": {"width": 8, "grid": 4}}}
    run = recipe(base, small_digits_world, tmp_path / "run", **towers)
    assert list(run.binder_config().towers) == ["image", "text", "depth", "digits"]
    binder = Trainer(run, progress=False).fit()
    saved = tensors(tmp_path / "run" / "model" / "model.safetensors")
    assert {k.split(".")[1] for k in saved} == {"digits"}  # the base's towers are not copied
    assert torch.equal(Binder.from_pretrained(tmp_path / "run" / "model").encoders["text"].stem.pos_embed,
                       binder.encoders["text"].stem.pos_embed)


@pytest.mark.parametrize("towers, message", [
    ({"depth": {"lora": {"rank": 4}}}, r"\[modalities.depth\]: lora: missing 'target_modules'"),
    ({"depth": {"lora": {"rank": 0, "target_modules": ["qkv"]}}}, r"lora rank: expected an integer >= 1, got 0"),
    ({"depth": {"lora": {"rank": 2, "target_modules": ["qkv"], "scale": 1}}}, r"lora: unknown field 'scale'"),
    ({"depth": {"freeze_encoder": True, "train_last_blocks": 1}},
     r"freeze_encoder and train_last_blocks: choose one way to tune the encoder"),
    ({"depth": {"encoder": "depth-cnn-tiny"}}, r"\[modalities.depth\] encoder: the tower comes from the base binder"),
])
def test_bad_tuning_fields_are_named(base, tmp_path, towers, message):
    with pytest.raises(RecipeError, match=message):
        recipe(base, {}, tmp_path, **towers)


def test_base_errors_are_named(base, tmp_path):
    table = {"name": "x", "base": str(tmp_path / "none"), "data": {"dataset": "digits-world"},
             "anchor": {"modality": "image"}, "modalities": {"digits": {}}}
    with pytest.raises(RecipeError, match="base: .* is not a binder folder"):
        parse_recipe(table)
    table.update(base=str(base), anchor={"modality": "depth"})
    with pytest.raises(RecipeError, match=r"\[anchor\] modality: the base binder's anchor is 'image'"):
        parse_recipe(table)


def test_lora_target_that_matches_nothing_lists_the_linear_layers(base, tmp_path):
    run = recipe(base, {}, tmp_path, depth={"lora": {"rank": 2, "target_modules": ["q_proj"]}})
    with pytest.raises(ValueError, match=r"depth lora target_modules \['q_proj'\].*named .*qkv"):
        Binder(run.binder_config(), base=base)


def test_a_lora_run_resumes_from_its_epoch_checkpoint_to_the_same_adapters(base, small_digits_world, tmp_path):
    lora = {"rank": 2, "target_modules": ["qkv"]}
    run = recipe(base, small_digits_world, tmp_path / "run", depth={"lora": lora, "augment": False})
    run.bind.epochs = 2
    Trainer(run, progress=False).fit()
    straight = tensors(tmp_path / "run" / "model" / "model.safetensors")
    checkpoints = tmp_path / "run" / "checkpoints"
    assert json.loads((checkpoints / "epoch-0001" / "config.json").read_text())["base"]["path"] == str(base.resolve())
    shutil.rmtree(checkpoints / "epoch-0002")  # as if the run had stopped after its first epoch
    shutil.rmtree(tmp_path / "run" / "model")
    Trainer(run, progress=False).fit(resume=True)
    resumed = tensors(tmp_path / "run" / "model" / "model.safetensors")
    assert sorted(resumed) == sorted(straight) and all(is_adapter(k) for k in resumed)
    for key, value in straight.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0, msg=key)
