"""Run-folder faults (issue 16): a rerun without flags, --overwrite, two trainers at once, a
non-finite loss, and a store holding the user's own collections. (A killed run resumed:
test_resume.py.)"""
from __future__ import annotations

import hashlib
import json
import math
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from test_resume import mmbind, write_recipe

from mmbind.errors import RunFolderError, TrainingError
from mmbind.pipeline import run_recipe, train_recipe
from mmbind.store import EmbeddingStore, StoreError, embed_split
from mmbind.training.bind import BindStage


STEPS = 4  # binding steps per epoch: small, to keep these tests quick


def toy_recipe(toy_plugin, tmp_path: Path, epochs: int):
    """The toy recipe without anchor pretraining and with STEPS steps per epoch."""
    import tomllib

    from mmbind.recipe import parse_recipe

    data = tomllib.loads(toy_plugin.RECIPE.format(run_dir=tmp_path / "run", epochs=epochs))
    data["anchor"].pop("pretrain")
    data["bind"]["steps_per_epoch"] = STEPS
    return parse_recipe(data, "toy.toml")


def snapshot(run: Path) -> dict[str, str]:
    """Every file of the run folder (but its lock) and a hash of its bytes."""
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_a_finished_run_is_refused_without_resume_or_overwrite_and_nothing_is_touched(toy_plugin, tmp_path):
    recipe = toy_recipe(toy_plugin, tmp_path, epochs=1)
    train_recipe(recipe)
    run = tmp_path / "run"
    before = snapshot(run)
    assert "metrics.jsonl" in before and "model/model.safetensors" in before
    with pytest.raises(RunFolderError, match=r"holds an earlier run \(checkpoints/epoch-0001, model/, "
                                             r"metrics.jsonl\): pass --resume .* --overwrite"):
        train_recipe(recipe)
    with pytest.raises(RunFolderError, match="holds an earlier run"):
        run_recipe(recipe, echo=lambda line: None)
    assert snapshot(run) == before
    assert not (run / ".lock").exists()


def nan_after(monkeypatch, step: int) -> None:
    """Binding reports a NaN loss from global step ``step`` on (as a diverged model would)."""
    original = BindStage.train_step

    def train_step(self, batch):
        record = original(self, batch)
        if self.global_step + 1 >= step:
            record[next(iter(record))] = math.nan
        return record

    monkeypatch.setattr(BindStage, "train_step", train_step)


def test_overwrite_keeps_the_earlier_run_until_the_new_one_has_a_checkpoint(toy_plugin, tmp_path, monkeypatch):
    recipe = toy_recipe(toy_plugin, tmp_path, epochs=1)
    train_recipe(recipe)
    run = tmp_path / "run"
    before = snapshot(run)
    with monkeypatch.context() as patch:
        nan_after(patch, 1)  # the new run fails before its first checkpoint
        with pytest.raises(TrainingError, match="no checkpoint had been saved"):
            train_recipe(recipe, overwrite=True)
    assert snapshot(run) == before  # the earlier run is back, whole
    assert not (run / ".previous").exists()

    recipe = toy_recipe(toy_plugin, tmp_path, epochs=2)
    train_recipe(recipe, overwrite=True)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch-0001", "epoch-0002"]
    assert not (run / ".previous").exists()
    assert snapshot(run)["model/model.safetensors"] != before["model/model.safetensors"]


def test_a_non_finite_loss_stops_training_naming_the_step_and_keeps_the_last_good_checkpoint(toy_plugin, tmp_path,
                                                                                              monkeypatch):
    recipe = toy_recipe(toy_plugin, tmp_path, epochs=3)
    steps = STEPS
    nan_after(monkeypatch, steps + 3)  # the third step of epoch 2
    with pytest.raises(TrainingError) as error:
        train_recipe(recipe)
    message = str(error.value)
    assert f"bind step {steps + 3} (epoch 2, step 3 of the epoch): the loss is not finite (loss/toy-b = nan)" \
        in message
    run = tmp_path / "run"
    assert f"the last good checkpoint, {run / 'checkpoints' / 'epoch-0001'}, is kept" in message
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch-0001"]
    assert not (run / "model").exists()  # no model saved after the loss went bad
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r.get("loss/toy-b", 0)) for r in records)  # the NaN step is not recorded


def test_an_infinite_learning_rate_fails_at_the_first_bad_step_not_with_a_nan_model(toy_plugin, tmp_path):
    recipe = toy_recipe(toy_plugin, tmp_path, epochs=2)
    # what `lr = inf` did before recipes refused it (set past the schema's validation): the
    # trainer's own guard must still stop at the first non-finite loss
    recipe.bind.__dict__["lr"] = math.inf
    with pytest.raises(TrainingError, match=r"bind step \d+ \(epoch 1, .*the loss is not finite"):
        train_recipe(recipe)
    assert not (tmp_path / "run" / "model").exists()


def test_two_trainers_on_one_run_folder_cannot_both_run(toy_plugin, tmp_path):
    from click.testing import CliRunner

    from mmbind.cli import cli
    from mmbind.commands import recipes

    recipes.register(cli) if "train" not in cli.commands else None

    recipe = write_recipe(tmp_path, "shared", epochs=500)  # runs until this test kills it
    first = mmbind(tmp_path, "train", str(recipe))
    run = tmp_path / "shared"
    deadline = time.time() + 120
    while not ((run / ".lock").exists() and (run / ".lock").read_text()) and first.poll() is None \
            and time.time() < deadline:
        time.sleep(0.01)
    assert first.poll() is None, first.stderr.read()
    try:
        second = CliRunner().invoke(cli, ["train", str(recipe), "--overwrite"])
        assert first.poll() is None  # the first was still training when the second was refused
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert second.exit_code == 1
    assert f"another process (pid {first.pid}) is training in this run folder" in second.output
    assert "Traceback" not in second.output
    metrics = run / "metrics.jsonl"
    epochs = [json.loads(line)["epoch"] for line in (metrics.read_text().splitlines() if metrics.exists() else [])
              if '"bind_epoch"' in line]
    assert epochs == list(range(1, len(epochs) + 1))  # one trainer's records, not two interleaved


def test_the_embed_stage_never_deletes_entries_it_did_not_write(toy_plugin, tmp_path):
    recipe = toy_recipe(toy_plugin, tmp_path, epochs=1)
    binder, data = train_recipe(recipe)
    store_path = embed_split(binder, data, recipe)
    with EmbeddingStore(store_path) as store:
        info = store.info("toy-b")
        mine = np.random.default_rng(0).normal(size=(3, info.dim))
        store.create_collection("mine", modality="toy-b", dim=info.dim, fingerprint=info.fingerprint)
        store.add("mine", mine, fingerprint=info.fingerprint, ids=["my/0", "my/1", "my/2"])

    recipe = toy_recipe(toy_plugin, tmp_path, epochs=2)
    binder, data = train_recipe(recipe, overwrite=True)
    embed_split(binder, data, recipe)
    with EmbeddingStore(store_path, mode="r") as store:
        assert store.count("mine") == 3  # the user's collection is untouched
        assert store.info("toy-b").fingerprint == binder.fingerprint() != info.fingerprint
        assert store.count("toy-b") == info.count  # the stage's own one now holds the new model's vectors

    with EmbeddingStore(store_path) as store:  # the user adds an entry to a collection the stage writes
        store.add("toy-b", mine[:1], fingerprint=binder.fingerprint(), ids=["my-own.npy"])
    before = snapshot(tmp_path / "run")
    with pytest.raises(StoreError, match=r"collection 'toy-b' holds entries the recipe's embed stage did not "
                                         r"write \(e.g. id 'my-own.npy'\)"):
        run_recipe(recipe, echo=lambda line: None, overwrite=True)
    assert snapshot(tmp_path / "run") == before  # refused before training touched anything
