"""The plugin manager: loads every entry point of group "mmbind" on its own and fills registries.

One failure policy for every plugin call (import, register_* hooks, register_commands): a
``RegistryError`` (two plugins claiming one name) always stops, since either choice would be a
guess; any other exception is reported as a warning naming the plugin, what it registered is
withdrawn, and the other plugins keep working. ``MMBIND_STRICT_PLUGINS=1`` makes every failure
an error (for plugin authors and CI).
"""
from __future__ import annotations

import importlib.metadata
import os
import warnings
from functools import partial
from typing import Any, Callable

import pluggy

from mmbind.plugin import hookspecs
from mmbind.plugin.hookspecs import PLUGIN_API
from mmbind.plugin.registry import Registry, RegistryError

pm = pluggy.PluginManager("mmbind")
pm.add_hookspecs(hookspecs)

KINDS = {"modalities": "modality", "encoders": "encoder", "datasets": "dataset", "losses": "loss"}
_loaded = False
_registries: dict[str, Registry] | None = None


def _strict() -> bool:
    return os.environ.get("MMBIND_STRICT_PLUGINS", "") not in ("", "0")


def call_plugin(plugin: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """Call a plugin's function under the failure policy; False if it failed and was skipped."""
    try:
        function(*args, **kwargs)
        return True
    except RegistryError:
        raise
    except Exception as error:  # one bad plugin must not take the others down
        message = f"mmbind plugin {plugin!r} failed and was skipped: {type(error).__name__}: {error}"
        if _strict():
            raise RuntimeError(message + " (MMBIND_STRICT_PLUGINS is set)") from error
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        return False


def load_plugins() -> None:
    """Import every installed entry point; a broken one is reported and skipped."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in importlib.metadata.entry_points(group="mmbind"):
        if pm.has_plugin(ep.name):
            continue
        call_plugin(ep.name, _register_entry_point, ep)


def _register_entry_point(ep: importlib.metadata.EntryPoint) -> None:
    module = ep.load()
    check_api(ep.name, module)
    pm.register(module, name=ep.name)


class PluginAPIError(RuntimeError):
    """A plugin written for another version of the plugin contract."""


def check_api(name: str, module: Any) -> None:
    """Refuse a plugin module that declares a PLUGIN_API other than this mmbind's."""
    declared = getattr(module, "PLUGIN_API", None)
    if declared is not None and declared != PLUGIN_API:
        raise PluginAPIError(f"it needs mmbind plugin API {declared!r}, and this mmbind provides {PLUGIN_API}: "
                             f"install a version of the plugin made for API {PLUGIN_API}, or an mmbind with API {declared!r}")


def registries() -> dict[str, Registry]:
    """The registries, filled on first use by calling each plugin's register_* hooks."""
    global _registries
    if _registries is None:
        load_plugins()
        filled = {kind: Registry(singular) for kind, singular in KINDS.items()}
        for kind, registry in filled.items():
            for impl in getattr(pm.hook, f"register_{kind}").get_hookimpls():
                register = partial(registry.register, owner=impl.plugin_name)
                if not call_plugin(impl.plugin_name, impl.function, register=register):
                    registry.unregister_owner(impl.plugin_name)
        _registries = filled
    return _registries


def reset() -> None:
    """Forget the registries so that they are filled again (after registering a plugin in tests)."""
    global _registries
    _registries = None


def register_commands(cli: Any) -> None:
    """Let every plugin add its commands to the root ``click.Group``."""
    load_plugins()
    for impl in pm.hook.register_commands.get_hookimpls():
        call_plugin(impl.plugin_name, impl.function, cli=cli)


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
            "plugin_api": getattr(plugin, "PLUGIN_API", None),
            "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []),
        })
    return info
