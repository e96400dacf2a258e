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


def make_distribution(root, name: str, source: str):
    """A real installed-looking distribution whose entry point ``name`` is the module ``source``."""
    (root / f"{name}_plugin.py").write_text(source)
    info = root / f"{name}_plugin-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-plugin\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(f"[mmbind]\n{name} = {name}_plugin\n")


def make_broken_distribution(root):
    """A distribution whose plugin module raises on import."""
    make_distribution(root, "broken", "raise RuntimeError('boom from broken_plugin')\n")


def test_a_plugin_for_another_plugin_api_is_skipped_with_the_version_it_needs(tmp_path):
    make_distribution(tmp_path, "future", textwrap.dedent("""
        import mmbind
        PLUGIN_API = 99

        @mmbind.hookimpl
        def register_losses(register):
            register(mmbind.LossSpec("future-loss", lambda: None))
    """))
    make_distribution(tmp_path, "current", "PLUGIN_API = 1\n")
    result = run_cli("plugins", pythonpath=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "'future' failed and was skipped" in result.stderr
    assert "needs mmbind plugin API 99, and this mmbind provides 1" in result.stderr
    info = {p["name"]: p for p in json.loads(result.stdout)}
    assert "future" not in info and info["current"]["plugin_api"] == 1
    assert "future-loss" not in run_cli("list", "losses", pythonpath=tmp_path).stdout


def test_user_errors_are_one_line_and_tracebacks_are_opt_in(tmp_path):
    make_distribution(tmp_path, "failing", textwrap.dedent("""
        import mmbind
        PLUGIN_API = 1

        @mmbind.hookimpl
        def register_commands(cli):
            @cli.command()
            def fail():
                raise mmbind.InputError("clip.wav: not a WAV file (expected RIFF/WAVE)")
    """))
    plain = run_cli("fail", pythonpath=tmp_path)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert plain.stderr.strip() == "Error: clip.wav: not a WAV file (expected RIFF/WAVE)"
    for flag in ("--traceback", "-v"):
        verbose = run_cli(flag, "fail", pythonpath=tmp_path)
        assert verbose.returncode == 1 and "Traceback" in verbose.stderr and "InputError" in verbose.stderr
