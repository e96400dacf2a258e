"""Run-folder faults (issue 16): a rerun without flags, --overwrite, two trainers at once, a
non-finite loss, and a store holding the user's own collections. (A killed run resumed:
test_resume.py.)"""
from __future__ import annotations

import hashlib
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_core_training import toy_recipe
from test_resume import mmbind, write_recipe

from mmbind.errors import RunFolderError, TrainingError
from mmbind.pipeline import run_recipe, train_recipe
from mmbind.store import EmbeddingStore, StoreError
from mmbind.training.bind import BindStage


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
    steps = None

    def count(self, *args, **kwargs):
        nonlocal steps
        original_init(self, *args, **kwargs)
        steps = self.steps

    original_init = BindStage.__init__
    monkeypatch.setattr(BindStage, "__init__", count)
    nan_after(monkeypatch, 10**9)
    train_recipe(toy_recipe(toy_plugin, tmp_path / "probe", epochs=1))  # learn the steps per epoch
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
    import json

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r.get("loss/toy-b", 0)) for r in records)  # the NaN step is not recorded


def test_an_infinite_learning_rate_fails_at_the_first_bad_step_not_with_a_nan_model(toy_plugin, tmp_path):
    recipe = toy_recipe(toy_plugin, tmp_path, epochs=2)
    recipe.bind.lr = math.inf  # what `lr = inf` in a recipe did before recipes refused it
    with pytest.raises(TrainingError, match=r"bind step \d+ \(epoch 1, .*the loss is not finite"):
        train_recipe(recipe)
    assert not (tmp_path / "run" / "model").exists()


def test_two_trainers_on_one_run_folder_cannot_both_run(tmp_path):
    recipe = write_recipe(tmp_path, "shared", epochs=6)
    first = mmbind(tmp_path, "train", str(recipe))
    lock = tmp_path / "shared" / ".lock"
    deadline = time.time() + 120
    while not (lock.exists() and lock.read_text().strip()) and first.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert first.poll() is None, "the first trainer ended before the second started"
    second = subprocess.run([sys.executable, str(tmp_path / "run_toy.py"), "train", str(recipe), "--overwrite"],
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 1
    assert f"another process (pid {first.pid}) is training in this run folder" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.wait(300) == 0, first.stderr.read()
    epochs = [line for line in (tmp_path / "shared" / "metrics.jsonl").read_text().splitlines()
              if '"bind_epoch"' in line]
    assert len(epochs) == 6  # one trainer's records, not two interleaved
    assert not lock.exists()


def test_the_embed_stage_never_deletes_entries_it_did_not_write(toy_plugin, tmp_path):
    recipe = toy_recipe(toy_plugin, tmp_path, epochs=1)
    recipe.eval.supervised_baselines = False
    run_recipe(recipe, echo=lambda line: None)
    store_path = tmp_path / "run" / recipe.embed.store
    with EmbeddingStore(store_path) as store:
        info = store.info("toy-b")
        pipeline_count = info.count
        mine = np.random.default_rng(0).normal(size=(3, info.dim))
        store.create_collection("mine", modality="toy-b", dim=info.dim, fingerprint=info.fingerprint)
        store.add("mine", mine, fingerprint=info.fingerprint, ids=["my/0", "my/1", "my/2"])

    recipe = toy_recipe(toy_plugin, tmp_path, epochs=2)
    recipe.eval.supervised_baselines = False
    run_recipe(recipe, echo=lambda line: None, overwrite=True)
    with EmbeddingStore(store_path, mode="r") as store:
        assert store.count("mine") == 3  # the user's collection is untouched
        assert store.info("toy-b").fingerprint != info.fingerprint  # the stage's own one is the new model's
        assert store.count("toy-b") == pipeline_count
        fingerprint = store.info("toy-b").fingerprint

    with EmbeddingStore(store_path) as store:  # the user adds an entry to a collection the stage writes
        store.add("toy-b", mine[:1], fingerprint=fingerprint, ids=["my-own.npy"])
    before = snapshot(tmp_path / "run")
    with pytest.raises(StoreError, match=r"collection 'toy-b' holds entries the recipe's embed stage did not "
                                         r"write \(e.g. id 'my-own.npy'\)"):
        run_recipe(recipe, echo=lambda line: None, overwrite=True)
    assert snapshot(tmp_path / "run") == before  # refused before training touched anything
