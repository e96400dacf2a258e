"""`mmbind new-plugin`: the package it writes installs, passes its own tests, trains from its recipe
([[data.add]] with the digits world) and passes `mmbind check-plugin` (issue 14's done-when).

The package is pip-installed into a folder of its own (``pip install --target``) that the
subprocesses put on PYTHONPATH: its entry point is found as an installed plugin's is, and the
test environment is left exactly as it was.
"""
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner


def run(*args, env, cwd):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_a_new_plugin_installs_passes_its_tests_trains_and_conforms(tmp_path):
    from mmbind.cli import _register_builtin_commands, cli

    _register_builtin_commands()
    result = CliRunner().invoke(cli, ["new-plugin", "braille", "--modality", "braille", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    package = tmp_path / "mmbind-braille"
    site = tmp_path / "site"
    install = run("-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site),
                  str(package), env=dict(os.environ), cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-3000:]
    env = dict(os.environ, PYTHONPATH=str(site), MMBIND_CACHE=str(tmp_path / "cache"), MMBIND_STRICT_PLUGINS="1")

    tests = run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests"), env=env, cwd=package)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert "3 passed" in tests.stdout

    # a few steps from its recipe: the digits world kept tiny, the text tower a small random one
    run_dir = tmp_path / "run"
    train = run("-m", "mmbind", "-q", "train", str(package / "recipes" / "braille.toml"),
                "--set", f'output_dir="{run_dir}"',
                "--set", "data.options={n_per_class = 2, audio_per_class = 0, audio_test_per_class = 0}",
                "--set", "anchor.pretrain.epochs=1", "--set", "bind.epochs=1", "--set", "bind.steps_per_epoch=3",
                "--set", "bind.batch_size=16", "--set", "modalities.text.encoder=text-transformer-tiny",
                env=env, cwd=tmp_path)
    assert train.returncode == 0, train.stderr[-3000:]
    assert (run_dir / "model" / "model.safetensors").is_file()
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    bound = [step for step in steps if step["stage"] == "bind"]
    assert len(bound) == 3 and all(step["loss/braille"] > 0 for step in bound)  # braille came in by [[data.add]]

    check = run("-m", "mmbind", "check-plugin", "braille", env=env, cwd=tmp_path)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    assert "FAIL" not in check.stdout and "checks passed" in check.stdout and "modality braille" in check.stdout


@pytest.mark.parametrize("args,message", [
    (["Braille", "--modality", "braille"], "plugin name 'Braille'"),
    (["braille", "--modality", "class"], "modality 'class'"),
])
def test_new_plugin_refuses_bad_names_in_one_line(tmp_path, args, message):
    from mmbind.cli import _register_builtin_commands, cli

    _register_builtin_commands()
    result = CliRunner().invoke(cli, ["new-plugin", *args, "--output", str(tmp_path)])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_docs_plugins_show_the_scaffolds_test_and_recipe_as_written(tmp_path):
    from pathlib import Path

    from mmbind.plugin.scaffold import new_plugin

    root = new_plugin("braille", "braille", tmp_path)
    doc = (Path(__file__).parent.parent / "docs" / "plugins.md").read_text()
    for name in ("tests/test_mmbind_braille.py", "recipes/braille.toml"):
        assert (root / name).read_text() in doc, f"docs/plugins.md is out of date with the scaffold's {name}"
    for command in ("mmbind new-plugin", "mmbind check-plugin", "assert_plugin_conforms", "registered_plugin",
                    "[[data.add]]"):
        assert command in doc
