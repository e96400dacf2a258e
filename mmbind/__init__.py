"""mmbind: bind many modalities into one embedding space through a frozen anchor.

Importing mmbind is cheap: torch loads only when a model is built or data is encoded.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmbind.data.compose import compose_datasets
from mmbind.plugin.hookspecs import PLUGIN_API, hookimpl
from mmbind.plugin.lazy import lazy
from mmbind.plugin.specs import (
    BindingData,
    DatasetSpec,
    EncoderSpec,
    InputError,
    LossSpec,
    Modality,
    ModalitySamples,
    SampleStream,
)

if TYPE_CHECKING:
    import torch

__version__ = "0.1.0"


def _registry(kind: str):
    from mmbind.plugin.manager import registries

    return registries()[kind]


def get_modality(name: str) -> Modality:
    return _registry("modalities").get(name)


def get_encoder(name: str) -> EncoderSpec:
    return _registry("encoders").get(name)


def get_dataset(name: str) -> DatasetSpec:
    return _registry("datasets").get(name)


def get_loss(name: str) -> LossSpec:
    return _registry("losses").get(name)


def list_modalities(pattern: str = "*") -> list[str]:
    return _registry("modalities").list(pattern)


def list_encoders(pattern: str = "*", modality: str | None = None) -> list[str]:
    names = _registry("encoders").list(pattern)
    return [n for n in names if modality is None or get_encoder(n).modality == modality]


def list_datasets(pattern: str = "*") -> list[str]:
    return _registry("datasets").list(pattern)


def list_losses(pattern: str = "*") -> list[str]:
    return _registry("losses").list(pattern)


def create_encoder(name: str, **options: Any) -> "torch.nn.Module":
    """Build a registered encoder, timm-style: ``create_encoder("audio-cnn-tiny", width=32)``."""
    return get_encoder(name).factory(**options)


def create_loss(name: str, **options: Any) -> "torch.nn.Module":
    """Build a registered loss: ``create_loss("infonce")``."""
    return get_loss(name).factory(**options)


def load_dataset(name: str, **options: Any) -> BindingData:
    return get_dataset(name).factory(**options)


def __getattr__(name: str) -> Any:
    # Heavy classes load on first use, so `import mmbind` stays fast.
    if name == "Binder":
        from mmbind.binder import Binder

        return Binder
    if name == "EmbeddingStore":
        from mmbind.store.store import EmbeddingStore

        return EmbeddingStore
    raise AttributeError(f"module 'mmbind' has no attribute {name!r}")


__all__ = [
    "hookimpl", "lazy", "PLUGIN_API", "Modality", "EncoderSpec", "LossSpec", "DatasetSpec", "BindingData",
    "ModalitySamples", "SampleStream", "InputError", "get_modality", "get_encoder", "get_dataset", "get_loss",
    "list_modalities", "list_encoders", "list_datasets", "list_losses", "create_encoder",
    "create_loss", "load_dataset", "compose_datasets", "Binder", "EmbeddingStore",
]
