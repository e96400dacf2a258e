"""The plugin contract. Every hook is called once per plugin when the plugin manager loads."""
from __future__ import annotations

from typing import Any, Callable

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("mmbind")
hookimpl = HookimplMarker("mmbind")


@hookspec
def register_modalities(register: Callable[[Any], None]) -> None:
    """Called once when the plugins load. Call ``register(Modality(...))`` for each modality the
    plugin provides (how to load a raw input, its transforms, collate and default encoder)."""


@hookspec
def register_encoders(register: Callable[[Any], None]) -> None:
    """Called once when the plugins load. Call ``register(EncoderSpec(...))`` for each encoder
    factory; the factory builds an ``nn.Module`` with an ``output_dim`` attribute, lazily."""


@hookspec
def register_datasets(register: Callable[[Any], None]) -> None:
    """Called once when the plugins load. Call ``register(DatasetSpec(...))`` for each paired
    dataset; its factory returns a ``BindingData`` when a recipe asks for it."""


@hookspec
def register_losses(register: Callable[[Any], None]) -> None:
    """Called once when the plugins load. Call ``register(LossSpec(...))`` for each loss; its
    factory builds an ``nn.Module`` called as ``loss(anchor, other, logit_scale, labels)``."""


@hookspec
def register_commands(cli: Any) -> None:
    """Called when the ``mmbind`` command starts. ``cli`` is the root ``click.Group``: add
    commands to it with ``@cli.command()``. Must not import torch at module level."""
