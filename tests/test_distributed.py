"""Distributed training on this machine: two gloo processes under torchrun against one process.

The math being checked: each rank's loss is the mean over its own queries of the cross-entropy
against the all-gathered (global) keys, the all-gather's backward sums every rank's gradient
into each rank's rows, and DDP averages the parameter gradients over ranks; so the update is
exactly the one of a single process on the global batch, with no rescaling.
"""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import toy_plugin

pytestmark = pytest.mark.distributed
TESTS = Path(__file__).parent

CLI_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import toy_plugin
from mmbind.plugin import manager as plugins
plugins.pm.register(toy_plugin, name="toy")
from mmbind.cli import main
main(sys.argv[1:])
"""


def torchrun(*args: str, nproc: int = 2, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-12000:]
    return done


def test_two_processes_give_the_gradients_of_one_process_on_the_global_batch(tmp_path):
    worker = str(TESTS / "distributed_worker.py")
    single = subprocess.run([sys.executable, worker, str(tmp_path), "64"], capture_output=True, text=True,
                            timeout=120)
    assert single.returncode == 0, single.stderr[-3000:]
    torchrun(worker, str(tmp_path), "64")
    reference = load_file(tmp_path / "infonce-world1.safetensors")
    for name in ("infonce", "infonce-gradcache", "infonce-label-positives", "siglip", "infonce-shared-projection"):
        one = load_file(tmp_path / f"{name}-world1.safetensors")
        two = load_file(tmp_path / f"{name}-world2.safetensors")
        assert one.keys() == two.keys() and "grad/log_scales.toy-b" in one
        assert any(k.startswith("grad/encoders.toy-b") for k in one)
        assert not any(k.startswith("grad/encoders.toy-a") for k in one)  # the frozen anchor
        torch.testing.assert_close(two["loss"], one["loss"], rtol=1e-5, atol=1e-6)
        for key in one:
            torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-6, msg=f"{name}: {key}")
        # the shared projection lives outside the DDP towers: its gradient is averaged by hand
        assert ("grad/projection.weight" in one) == (name == "infonce-shared-projection")
        if name == "infonce-gradcache":  # K=2 micro-batches on each of 2 ranks == the plain step
            for key in reference:
                torch.testing.assert_close(two[key], reference[key], rtol=1e-4, atol=1e-6, msg=key)


def test_toy_recipe_trains_under_torchrun_and_resumes(tmp_path):
    script = tmp_path / "run_toy.py"
    script.write_text(CLI_SCRIPT.format(tests=str(TESTS)))
    text = toy_plugin.RECIPE.format(run_dir=tmp_path / "run", epochs=3)
    recipe = tmp_path / "toy.toml"
    recipe.write_text(text.replace("batch_size = 32", "batch_size = 16"))
    done = torchrun(str(script), "train", str(recipe))
    assert "bind epoch 3/3: 13 steps" in done.stderr and "data wait" in done.stderr  # the CLI logs at INFO
    run = tmp_path / "run"
    straight = load_file(run / "model" / "model.safetensors")
    metrics = (run / "metrics.jsonl").read_text().splitlines()
    import json

    records = [json.loads(line) for line in metrics]
    steps = [r["step"] for r in records if r["stage"] == "bind"]
    assert steps == list(range(1, len(steps) + 1))  # rank 0 alone writes metrics
    # toy-clusters has 400 training samples per modality: 400 / (16 * 2 ranks) = 13 steps
    assert len(steps) == 3 * 13
    epochs = [r for r in records if r["stage"] == "bind_epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3] and all(0 <= r["data_wait_share"] < 1 for r in epochs)

    # lose the last epoch, as a run killed during it would, and resume under torchrun
    import shutil

    shutil.rmtree(run / "checkpoints" / "epoch-0003")
    shutil.rmtree(run / "model")
    torchrun(str(script), "train", str(recipe), "--resume")
    resumed = load_file(run / "model" / "model.safetensors")
    assert resumed.keys() == straight.keys()
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=1e-6, msg=key)
    assert len((run / "metrics.jsonl").read_text().splitlines()) == len(metrics)
