"""A run killed mid-way and resumed ends with the same weights as an uninterrupted run."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

import toy_plugin

SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import toy_plugin
from mmbind.plugin import manager as plugins
plugins.pm.register(toy_plugin, name="toy")
from mmbind.cli import main
main(sys.argv[1:])
"""


def write_recipe(tmp_path: Path, name: str, epochs: int) -> Path:
    text = toy_plugin.RECIPE.format(run_dir=tmp_path / name, epochs=epochs)
    text = text.replace('dataset = "toy-clusters"', 'dataset = "toy-clusters"\noptions = { n_per_class = 150 }')
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def mmbind(tmp_path: Path, *args: str) -> subprocess.Popen:
    script = tmp_path / "run_toy.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    return subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_killed_run_resumes_to_identical_weights(tmp_path):
    epochs = 8
    killed = write_recipe(tmp_path, "killed", epochs)
    process = mmbind(tmp_path, "train", str(killed))
    checkpoint = tmp_path / "killed" / "checkpoints" / "epoch-0003"
    deadline = time.time() + 120
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (tmp_path / "killed" / "model").exists()
    done = sorted(p.name for p in (tmp_path / "killed" / "checkpoints").glob("epoch-*"))
    assert done and done[-1] < f"epoch-{epochs:04d}", done

    resumed = mmbind(tmp_path, "train", str(killed), "--resume")
    assert resumed.wait(300) == 0, resumed.stderr.read()
    straight = mmbind(tmp_path, "train", str(write_recipe(tmp_path, "straight", epochs)))
    assert straight.wait(300) == 0, straight.stderr.read()

    a = load_file(tmp_path / "killed" / "model" / "model.safetensors")
    b = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    # metrics of the redone steps are not duplicated
    lines = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len((tmp_path / "straight" / "metrics.jsonl").read_text().splitlines())
