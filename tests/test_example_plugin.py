"""The worked example of docs/plugins.md, built as its own distribution, installed and trained."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "tests" / "example_plugin"


def test_docs_show_exactly_the_tested_example():
    doc = (ROOT / "docs" / "plugins.md").read_text()
    for name in ("pyproject.toml", "mmbind_morse/__init__.py", "mmbind_morse/model.py", "morse.toml"):
        assert (EXAMPLE / name).read_text() in doc, f"docs/plugins.md is out of date with {name}"


@pytest.fixture(scope="module")
def installed_example():
    """Install the example unless it is installed already (an author's editable install stays)."""
    import importlib.metadata

    try:
        importlib.metadata.distribution("mmbind-morse")
        yield
        return
    except importlib.metadata.PackageNotFoundError:
        pass
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(EXAMPLE)]
    subprocess.run(pip, check=True)
    yield
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "mmbind-morse"], check=True)


def mmbind(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mmbind", *args], capture_output=True, text=True, cwd=cwd)


def test_installed_example_is_listed(installed_example):
    result = mmbind("plugins")
    assert result.returncode == 0, result.stderr
    info = {p["name"]: p for p in json.loads(result.stdout)}
    assert info["morse"]["distribution"] == "mmbind-morse" and info["morse"]["version"] == "0.1.0"
    assert info["morse"]["hooks"] == ["register_datasets", "register_encoders", "register_modalities"]
    assert "morse-gru-tiny" in mmbind("list", "encoders", "morse*").stdout


def test_installed_example_trains_in_a_recipe(installed_example, tmp_path):
    run_dir = tmp_path / "morse-run"
    result = mmbind("train", str(EXAMPLE / "morse.toml"), "--set", f'output_dir="{run_dir}"',
                    "--set", "bind.epochs=2", "--set", "anchor.pretrain.epochs=1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "model" / "model.safetensors").is_file()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss/morse"] for r in records if r["stage"] == "bind"]
    assert len(losses) >= 10 and losses[-1] < losses[0]
