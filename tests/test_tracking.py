"""Experiment tracking: the run-event hooks reach a plugin with metrics.jsonl's records, and the
built-in trackers write what TensorBoard's own event reader and W&B's own record format read
back (W&B in offline mode: no network)."""
from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest
import tomllib

import fake_world
import mmbind
from mmbind.plugin.manager import pm
from mmbind.recipe import RecipeError, parse_recipe
from mmbind.training.trainer import Trainer


@pytest.fixture(autouse=True)
def world():
    with fake_world.registered(), fake_world.one_thread():
        yield


def fake_recipe(tmp_path: Path, epochs: int = 2, trackers: list[str] | None = None):
    """The fake world's recipe (anchor pretraining, then binding), with ``[log] trackers``."""
    text = fake_world.RECIPE.format(run_dir=tmp_path / "run", epochs=epochs, supervised="false")
    if trackers is not None:
        text += f"\n[log]\ntrackers = {json.dumps(trackers)}\n"
    return parse_recipe(tomllib.loads(text), str(tmp_path / "recipe.toml"))


class Recorder:
    """A plugin implementing the four run-event hooks, keeping what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    @mmbind.hookimpl
    def on_train_start(self, recipe, run_dir):
        self.calls.append(("train_start", (recipe.name, Path(run_dir))))

    @mmbind.hookimpl
    def on_step_end(self, record):
        self.calls.append(("step", dict(record)))

    @mmbind.hookimpl
    def on_epoch_end(self, record):
        self.calls.append(("epoch", dict(record)))

    @mmbind.hookimpl
    def on_eval_end(self, results):  # an implementation may take a subset of the arguments
        self.calls.append(("eval", results))


@pytest.fixture
def recorder():
    plugin = Recorder()
    pm.register(plugin, name="test-recorder")
    yield plugin
    pm.unregister(plugin)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_hooks_see_every_record_of_metrics_jsonl(tmp_path, recorder):
    recipe = fake_recipe(tmp_path, epochs=2)
    Trainer(recipe, progress=False).fit()
    kinds = [kind for kind, _ in recorder.calls]
    assert kinds[0] == "train_start" and recorder.calls[0][1] == (recipe.name, recipe.run_dir)
    written = [r for r in records(recipe.run_dir / "metrics.jsonl") if r["stage"] != "anchor_cache"]
    seen = [value for kind, value in recorder.calls if kind in ("step", "epoch")]
    assert seen == written  # pretraining's and binding's, in order
    assert [r["stage"] for kind, r in recorder.calls if kind == "epoch"] == ["pretrain_epoch"] * 3 + ["bind_epoch"] * 2


def test_a_failing_hook_is_reported_and_training_goes_on(tmp_path, monkeypatch):
    class Broken:
        @mmbind.hookimpl
        def on_epoch_end(self, record):
            raise RuntimeError("tracker down")

    broken = Broken()
    pm.register(broken, name="test-broken")
    monkeypatch.delenv("MMBIND_STRICT_PLUGINS", raising=False)
    try:
        recipe = fake_recipe(tmp_path, epochs=1)
        with pytest.warns(RuntimeWarning, match="test-broken.*tracker down"):
            Trainer(recipe, progress=False).fit()
        assert (recipe.run_dir / "model").is_dir()
    finally:
        pm.unregister(broken)


def test_unknown_tracker_is_a_recipe_error(tmp_path):
    with pytest.raises(RecipeError, match=r"\[log\] trackers: unknown tracker 'mlflow'; expected any of tensorboard"):
        fake_recipe(tmp_path, trackers=["mlflow"])


def test_tensorboard_event_files_hold_the_metrics(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe = fake_recipe(tmp_path, epochs=2, trackers=["tensorboard"])
    Trainer(recipe, progress=False).fit()
    events = EventAccumulator(str(recipe.run_dir / "tensorboard"))
    events.Reload()
    written = records(recipe.run_dir / "metrics.jsonl")
    steps = [r for r in written if r["stage"] == "bind"]
    modality = recipe.bound[0]
    loss = events.Scalars(f"bind/loss/{modality}")
    assert [e.step for e in loss] == [r["step"] for r in steps]
    assert [e.value for e in loss] == pytest.approx([r[f"loss/{modality}"] for r in steps], rel=1e-6)
    epochs = events.Scalars("bind_epoch/loss")
    assert [e.step for e in epochs] == [1, 2]
    assert [e.value for e in epochs] == pytest.approx([r["loss"] for r in written if r["stage"] == "bind_epoch"])
    assert "recipe/text_summary" in events.Tags()["tensors"]  # the recipe, as text


# --- W&B, offline -------------------------------------------------------------------------------
def wandb_records(path: Path):
    """The records of a W&B ``.wandb`` file, decoded with W&B's own protobuf: a LevelDB-style
    log (7-byte header; 32 KiB blocks of chunks: crc32 4 bytes, length 2, type 1 (full, first,
    middle, last))."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a chunk header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 or pos + 7 + length > len(data):  # the end, or a chunk still being written
            break
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_wandb_offline_run_holds_the_metrics_and_evaluation(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    from mmbind.evaluation.run import evaluate_run
    from mmbind.tracking import tracking

    recipe = fake_recipe(tmp_path, epochs=2, trackers=["wandb"])
    with tracking(recipe, recipe.run_dir):  # as `mmbind run` does: one W&B run for both stages
        trainer = Trainer(recipe, progress=False)
        results = evaluate_run(trainer.fit(), trainer.data, recipe)
    (run_file,) = (recipe.run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    # W&B's service process may still be writing the file when finish() returns: wait for the
    # run's closing "exit" record.
    deadline = time.monotonic() + 60
    while not any(r.WhichOneof("record_type") == "exit" for r in wandb_records(run_file)):
        assert time.monotonic() < deadline, f"{run_file}: no exit record after 60 s"
        time.sleep(0.5)

    def items(entries) -> dict:
        return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in entries}

    history, summary, config = [], {}, {}
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append(items(record.history.item))
        elif kind == "summary":
            summary.update(items(record.summary.update))
        elif kind in ("run", "config"):  # the run's start carries the config; updates follow
            config.update(items((record.run.config if kind == "run" else record.config).update))
    modality = recipe.bound[0]
    steps = [r for r in records(recipe.run_dir / "metrics.jsonl") if r["stage"] == "bind"]
    logged = [h for h in history if f"bind/loss/{modality}" in h]
    assert [h["bind/step"] for h in logged] == [r["step"] for r in steps]
    assert [h[f"bind/loss/{modality}"] for h in logged] == pytest.approx([r[f"loss/{modality}"] for r in steps])
    row, pair = results["rows"][1], results["retrieval"][0]
    assert summary[f"eval/{row['split']}/{row['modality']}/R@1_to_anchor"] == pytest.approx(row["R@1_to_anchor"])
    assert summary[f"eval/{pair['split']}/{pair['query']}->{pair['gallery']}/R@5"] == pytest.approx(pair["R@5"])
    assert config["name"] == recipe.name and config["log"] == {"trackers": ["wandb"]}  # the recipe
    assert config["run_dir"] == str(recipe.run_dir)
