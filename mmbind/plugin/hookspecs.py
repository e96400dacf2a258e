"""The plugin contract: five hooks, implemented with ``@mmbind.hookimpl`` (docs/hooks.md).

The four ``register_*`` hooks run once per process, the first time a registry is used (a recipe,
``mmbind list``, ``mmbind.get_encoder``...); ``register_commands`` runs every time the ``mmbind``
command starts. A plugin module must stay cheap to import: torch, timm and friends load inside
the factories (``mmbind.lazy`` helps).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from pluggy import HookimplMarker, HookspecMarker

if TYPE_CHECKING:
    import click

    from mmbind.plugin.specs import DatasetSpec, EncoderSpec, LossSpec, Modality

# The version of this contract. A plugin module declares the version it was written for as
# ``PLUGIN_API = 1``; one that declares another is skipped at load with a message, since it
# would fail in ways its author never saw. Bumped only on incompatible changes.
PLUGIN_API = 1

hookspec = HookspecMarker("mmbind")
hookimpl = HookimplMarker("mmbind")


@hookspec
def register_modalities(register: Callable[[Modality], None]) -> None:
    """Called once per process, when the registries are first used. Call
    ``register(Modality(...))`` for each modality the plugin provides.

    ``load`` raises ``InputError`` naming the file. ``transform(train=False, **options)`` must be
    pure when ``train=False`` (its outputs are cached and reused every epoch) and, when
    ``train=True``, draw randomness only from the global generators (``torch``, ``numpy.random``,
    ``random``): the trainer seeds them per batch, which is what makes a resumed run bit-exact.
    """


@hookspec
def register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    """Called once per process, when the registries are first used. Call
    ``register(EncoderSpec(...))`` for each encoder factory.

    ``factory(**options)`` builds an ``nn.Module`` with an int ``output_dim`` mapping a collated
    batch to ``(B, output_dim)`` features. It may be called more than once (the binder, the
    supervised baseline, ``Binder.from_pretrained`` with ``pretrained=False``): it must not
    keep state between calls.
    """


@hookspec
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Called once per process, when the registries are first used. Call
    ``register(DatasetSpec(...))`` for each paired dataset.

    ``factory(**options)`` runs when a recipe names the dataset and returns ``BindingData``;
    labels may be -1 (unknown class): metrics leave such samples out.
    """


@hookspec
def register_losses(register: Callable[[LossSpec], None]) -> None:
    """Called once per process, when the registries are first used. Call
    ``register(LossSpec(...))`` for each loss.

    ``factory(**options)`` builds one ``nn.Module`` per bound modality, called every step as
    ``loss(anchor, other, logit_scale, labels)`` on unit vectors ``(B, D)`` (labels may be -1).
    Under torch.distributed it sees this rank's rows only: gather features with gradient
    (``mmbind.distributed.gather_with_grad``) and offset the diagonal targets by
    ``mmbind.distributed.rank() * B``, so the loss equals one process's on the global batch.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Called each time the ``mmbind`` command starts, after the built-in commands are added.
    Add commands to the root ``click.Group`` with ``@cli.command()``; import torch inside them."""
