import importlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def _registered(module_name: str, plugin_name: str):
    """Register a fake plugin module of tests/ for one test, then unregister it (as llm's tests do)."""
    from mmbind.plugin import manager as plugins

    module = importlib.import_module(module_name)
    plugins.pm.register(module, name=plugin_name)
    plugins.reset()
    yield module
    plugins.pm.unregister(name=plugin_name)
    plugins.reset()


@pytest.fixture(autouse=True)
def _baseline_cache(tmp_path_factory, monkeypatch):
    """Supervised baselines are cached in a folder of each test's own, never in ~/.cache."""
    folder = tmp_path_factory.mktemp("mmbind-cache")
    monkeypatch.setattr("mmbind.evaluation.baseline_cache.cache_dir", lambda: folder)


@pytest.fixture
def toy_plugin():
    """The fake toy plugin (tests/toy_plugin.py): two simulated vector sensors."""
    yield from _registered("toy_plugin", "toy")


@pytest.fixture
def caption_plugin():
    """The fake caption plugin (tests/caption_plugin.py): a modality whose inputs are strings."""
    yield from _registered("caption_plugin", "caption")


# A small digits world (no synthetic speech), built once per session: the fine-tuning and
# ImageBind-extension tests train on it. Recipes pass these options to the dataset.
SMALL_DIGITS_WORLD = dict(n_per_class=6, audio_per_class=0, audio_test_per_class=0)


@pytest.fixture(scope="session")
def small_digits_world(tmp_path_factory) -> dict:
    """Options of ``digits-world`` for a small build cached in a session folder."""
    import mmbind

    options = {"root": str(tmp_path_factory.mktemp("digits-world")), **SMALL_DIGITS_WORLD}
    mmbind.load_dataset("digits-world", **options)
    return options
