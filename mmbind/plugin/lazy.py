"""``mmbind.lazy``: a factory that imports its target only when called, so plugin modules stay
cheap to import (``mmbind --help`` never loads torch) while the factory keeps the target's
signature for recipe validation."""
from __future__ import annotations

import functools
import inspect
from importlib import import_module
from typing import Any, Callable


class lazy:  # noqa: N801 - used like a function: mmbind.lazy("pkg.module:function")
    """``lazy("package.module:function", **preset)``: calling it imports the module and calls
    ``function(**preset, **options)``. Picklable (DataLoader workers) and introspectable:
    ``inspect.signature`` gives the target's signature (importing it then)."""

    def __init__(self, target: str, **preset: Any) -> None:
        module, sep, name = target.partition(":")
        if not sep or not module or not name:
            raise ValueError(f"lazy target {target!r}: expected 'package.module:function'")
        self.target = target
        self.preset = preset
        self.__name__ = name
        self.__qualname__ = name

    def resolve(self) -> Callable[..., Any]:
        """The target callable, with the preset options bound."""
        module, _, name = self.target.partition(":")
        function = getattr(import_module(module), name)
        return functools.partial(function, **self.preset) if self.preset else function

    def __call__(self, *args: Any, **options: Any) -> Any:
        return self.resolve()(*args, **options)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self.resolve())

    def __repr__(self) -> str:
        preset = "".join(f", {k}={v!r}" for k, v in self.preset.items())
        return f"lazy({self.target!r}{preset})"
