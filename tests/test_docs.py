"""The docs stay true to the code: every hook is documented, the worked plugin example is the tested one."""
import inspect
import re
from pathlib import Path

from mmbind.plugin import hookspecs

ROOT = Path(__file__).parent.parent


def test_every_hook_is_documented_with_its_signature():
    text = (ROOT / "docs" / "hooks.md").read_text()
    hooks = [name for name, fn in vars(hookspecs).items()
             if inspect.isfunction(fn) and hasattr(fn, "mmbind_spec")]
    assert len(hooks) == 9
    for name in hooks:
        assert f"## {name}" in text, f"docs/hooks.md has no section for hook {name}"
        params = list(inspect.signature(getattr(hookspecs, name)).parameters)
        assert re.search(rf"def {name}\({params[0]}:", text), f"signature of {name} is not documented"
    documented = set(re.findall(r"^## (\w+)", text, flags=re.M))
    assert documented == set(hooks), f"docs/hooks.md documents hooks that do not exist: {documented - set(hooks)}"


def test_every_hook_has_a_docstring():
    for name, fn in vars(hookspecs).items():
        if inspect.isfunction(fn) and hasattr(fn, "mmbind_spec"):
            assert fn.__doc__ and "Called" in fn.__doc__, name
