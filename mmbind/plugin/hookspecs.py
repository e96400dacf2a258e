"""The plugin contract: nine hooks, implemented with ``@mmbind.hookimpl`` (docs/hooks.md).

The four ``register_*`` hooks run once per process, the first time a registry is used (a recipe,
``mmbind list``, ``mmbind.get_encoder``...); ``register_commands`` runs every time the ``mmbind``
command starts. The four ``on_*`` run-event hooks are called on rank 0 as a run goes (experiment
trackers implement them). A plugin module must stay cheap to import: torch, timm and friends load
inside the factories (``mmbind.lazy`` helps).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pluggy import HookimplMarker, HookspecMarker

if TYPE_CHECKING:
    import click

    from mmbind.plugin.specs import DatasetSpec, EncoderSpec, LossSpec, Modality
    from mmbind.recipe import Recipe

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
    keep state between calls. An encoder that tokenises defines ``collate(items) -> batch`` and
    takes tensors in ``forward``, so the batching runs in loader workers and the tower exports.
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


@hookspec
def on_train_start(recipe: Recipe, run_dir: Path) -> None:
    """Called on rank 0 when training starts or resumes, before the first step (and before
    anchor pretraining), with the validated recipe and the run folder. A tracker opens its run
    here; the built-in ones are chosen by ``[log] trackers``."""


@hookspec
def on_step_end(record: dict[str, Any]) -> None:
    """Called on rank 0 after every training step with the step's record, once it is written to
    metrics.jsonl (the record of truth): ``stage`` ("pretrain" or "bind"), ``epoch``, ``step``
    (binding's global step), ``loss`` or ``loss/<modality>``, ``temperature/<modality>``, ``lr``.
    Keep it cheap: it runs between steps. Do not change the record."""


@hookspec
def on_epoch_end(record: dict[str, Any]) -> None:
    """Called on rank 0 after every epoch with the epoch's record, once written to metrics.jsonl:
    ``stage`` ("pretrain_epoch" or "bind_epoch"), ``epoch``, ``steps``, ``seconds``,
    ``data_wait_share``, mean ``loss``. The epoch's checkpoint is written after this call."""


@hookspec
def on_eval_end(results: dict[str, Any], run_dir: Path) -> None:
    """Called on rank 0 when ``evaluate_run`` ends (``mmbind run``, ``mmbind eval``) with its
    JSON-able results (docs/evaluation.md: ``rows`` per split and modality, ``retrieval`` per
    pair) and the folder the results go to."""
