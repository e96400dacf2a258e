"""Helpers for testing plugins with pytest (docs/plugins.md shows them in use).

``registered_plugin(module)`` registers a plugin module in this process, without pip, for the
length of a ``with`` block; ``assert_plugin_conforms(name)`` runs the conformance suite of
``mmbind check-plugin`` and fails with its report.
"""
from __future__ import annotations

from contextlib import contextmanager
from types import ModuleType
from typing import Iterator

from mmbind.plugin.conformance import Check, Report, check_plugin


@contextmanager
def registered_plugin(module: ModuleType, name: str | None = None) -> Iterator[str]:
    """Register ``module`` as a plugin (as its entry point would) inside the block; yields its name."""
    from mmbind.plugin import manager

    name = name or module.__name__.split(".")[0]
    manager.load_plugins()
    if manager.pm.get_plugin(name) is not None:
        raise ValueError(f"a plugin named {name!r} is already registered (installed?): pass another name")
    manager.check_api(name, module)
    manager.pm.register(module, name=name)
    manager.reset()
    try:
        yield name
    finally:
        manager.pm.unregister(name=name)
        manager.reset()


def assert_plugin_conforms(name: str) -> Report:
    """Run the conformance suite on plugin ``name``; raise AssertionError with the report if a check fails."""
    report = check_plugin(name)
    if not report.ok:
        raise AssertionError(report.summary())
    return report


__all__ = ["registered_plugin", "assert_plugin_conforms", "check_plugin", "Check", "Report"]
