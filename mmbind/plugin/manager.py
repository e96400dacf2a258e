"""The plugin manager: loads every entry point of group "mmbind" on its own and fills registries."""
from __future__ import annotations

import importlib.metadata
import os
import warnings
from functools import partial

import pluggy

from mmbind.plugin import hookspecs
from mmbind.plugin.registry import Registry

pm = pluggy.PluginManager("mmbind")
pm.add_hookspecs(hookspecs)

KINDS = {"modalities": "modality", "encoders": "encoder", "datasets": "dataset", "losses": "loss"}
_loaded = False
_registries: dict[str, Registry] | None = None


def _strict() -> bool:
    return os.environ.get("MMBIND_STRICT_PLUGINS", "") not in ("", "0")


def _report(plugin: str, error: BaseException) -> None:
    message = f"mmbind plugin {plugin!r} failed and was skipped: {type(error).__name__}: {error}"
    if _strict():
        raise RuntimeError(message + " (MMBIND_STRICT_PLUGINS is set)") from error
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def load_plugins() -> None:
    """Import every installed entry point; a broken one is reported and skipped."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in importlib.metadata.entry_points(group="mmbind"):
        if pm.has_plugin(ep.name):
            continue
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as error:  # one bad plugin must not take the others down
            _report(ep.name, error)


def registries() -> dict[str, Registry]:
    """The registries, filled on first use by calling each plugin's register_* hooks."""
    global _registries
    if _registries is None:
        load_plugins()
        filled = {kind: Registry(singular) for kind, singular in KINDS.items()}
        for kind, registry in filled.items():
            for impl in getattr(pm.hook, f"register_{kind}").get_hookimpls():
                try:
                    impl.function(register=partial(registry.register, owner=impl.plugin_name))
                except Exception as error:
                    if "registered twice" in str(error):
                        raise
                    registry.unregister_owner(impl.plugin_name)
                    _report(impl.plugin_name, error)
        _registries = filled
    return _registries


def reset() -> None:
    """Forget the registries so that they are filled again (after registering a plugin in tests)."""
    global _registries
    _registries = None


def plugin_info() -> list[dict]:
    """Name, version and hooks of every loaded plugin, as `mmbind plugins` prints them."""
    load_plugins()
    dists = {}
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == "mmbind":
                dists[ep.name] = dist
    info = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        dist = dists.get(name)
        info.append({
            "name": name,
            "distribution": dist.metadata["Name"] if dist else None,
            "version": dist.version if dist else None,
            "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []),
        })
    return info
