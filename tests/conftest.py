import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def toy_plugin():
    """Register the fake toy plugin for one test, then unregister it (as llm's tests do)."""
    import toy_plugin as module

    from mmbind.plugin import manager as plugins

    plugins.pm.register(module, name="toy")
    plugins.reset()
    yield module
    plugins.pm.unregister(name="toy")
    plugins.reset()
