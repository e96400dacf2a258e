import json
import os
import subprocess
import sys
import textwrap
import types

import pytest

import mmbind
from mmbind.plugin import manager as plugins
from mmbind.plugin.registry import RegistryError

FIRST_PARTY = {"image", "text", "audio", "depth", "thermal", "imu", "digits", "losses",
               "digits_world", "datasets"}


def run_cli(*args, env=None, pythonpath=None):
    env = {**os.environ, **(env or {})}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "mmbind", *args], capture_output=True, text=True, env=env)


def test_plugins_lists_every_first_party_plugin_with_version_and_hooks():
    result = run_cli("plugins")
    assert result.returncode == 0, result.stderr
    info = {p["name"]: p for p in json.loads(result.stdout)}
    assert FIRST_PARTY <= set(info)
    assert info["losses"]["version"] == mmbind.__version__
    assert info["losses"]["hooks"] == ["register_losses"]


@pytest.mark.parametrize("args", [("--help",), ("plugins",), ("list", "losses")])
def test_cli_start_up_does_not_import_torch(args):
    code = textwrap.dedent(f"""
        import sys
        from mmbind.cli import main
        try:
            main({list(args)!r})
        except SystemExit:
            pass
        heavy = sorted(m for m in ("torch", "timm", "transformers", "umap", "torchaudio", "sklearn")
                       if m in sys.modules)
        print("HEAVY", heavy, file=sys.stderr)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in result.stderr, result.stderr


def make_broken_distribution(root):
    """A real installed-looking distribution whose plugin module raises on import."""
    (root / "broken_plugin.py").write_text("raise RuntimeError('boom from broken_plugin')\n")
    info = root / "broken_plugin-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text("[mmbind]\nbroken = broken_plugin\n")


def test_broken_plugin_is_reported_and_the_rest_still_works(tmp_path):
    make_broken_distribution(tmp_path)
    result = run_cli("plugins", pythonpath=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "'broken' failed and was skipped" in result.stderr and "boom from broken_plugin" in result.stderr
    assert "losses" in {p["name"] for p in json.loads(result.stdout)}
    listed = run_cli("list", "losses", pythonpath=tmp_path)
    assert listed.returncode == 0 and "infonce" in listed.stdout


def test_strict_mode_turns_a_broken_plugin_into_an_error(tmp_path):
    make_broken_distribution(tmp_path)
    result = run_cli("plugins", pythonpath=tmp_path, env={"MMBIND_STRICT_PLUGINS": "1"})
    assert result.returncode != 0
    assert "broken" in result.stderr and "MMBIND_STRICT_PLUGINS" in result.stderr


def fake_plugin(name: str, loss_name: str):
    module = types.ModuleType(name)

    @mmbind.hookimpl
    def register_losses(register):
        register(mmbind.LossSpec(loss_name, lambda: None, "fake"))

    module.register_losses = register_losses
    return module


def test_duplicate_names_name_both_plugins():
    plugins.pm.register(fake_plugin("first", "twin"), name="first-plugin")
    plugins.pm.register(fake_plugin("second", "twin"), name="second-plugin")
    plugins.reset()
    try:
        with pytest.raises(RegistryError) as error:
            plugins.registries()
        assert "'twin' is registered twice" in str(error.value)
        assert "first-plugin" in str(error.value) and "second-plugin" in str(error.value)
    finally:
        plugins.pm.unregister(name="first-plugin")
        plugins.pm.unregister(name="second-plugin")
        plugins.reset()


def test_a_registered_fake_plugin_shows_up_and_goes_away():
    plugins.pm.register(fake_plugin("third", "my-loss"), name="third-plugin")
    plugins.reset()
    try:
        assert "my-loss" in mmbind.list_losses("my-*")
        assert plugins.registries()["losses"].owner("my-loss") == "third-plugin"
    finally:
        plugins.pm.unregister(name="third-plugin")
        plugins.reset()
    assert "my-loss" not in mmbind.list_losses()


def test_unknown_name_lists_close_matches():
    with pytest.raises(RegistryError, match=r"unknown loss 'infonc'; did you mean 'infonce'"):
        mmbind.get_loss("infonc")


def test_wildcard_listing():
    assert mmbind.list_losses("*nce") == ["infonce"]
    assert mmbind.list_losses("s*") == ["siglip"]
