"""A fake plugin for core tests: a "caption" modality whose inputs are strings that are always the
content itself (``input_file`` says no string names a file), with a tiny byte-histogram encoder.
It shows a plugin modality the core knows nothing about by name. Registered by tests only."""
from __future__ import annotations

from typing import Any

import mmbind

BYTES = 256  # one histogram bin per byte value


def _load(x: Any) -> str:
    if not isinstance(x, str):
        raise mmbind.InputError(f"value of type {type(x).__name__}: expected a caption (str)")
    return x


def _transform(train: bool = False):
    return lambda caption: caption


def _collate(items: list) -> list[str]:
    return list(items)


def _byte_histogram(output_dim: int = 16):
    import torch
    import torch.nn as nn

    class ByteHistogram(nn.Module):
        """Counts of each UTF-8 byte value of a caption, projected to output_dim."""

        def __init__(self) -> None:
            super().__init__()
            self.output_dim = output_dim
            self.project = nn.Linear(BYTES, output_dim)

        def forward(self, captions: list[str]) -> torch.Tensor:
            counts = torch.zeros(len(captions), BYTES, device=self.project.weight.device)
            for i, caption in enumerate(captions):
                data = torch.tensor(list(caption.encode("utf-8")), dtype=torch.long)
                counts[i].index_add_(0, data.to(counts.device), torch.ones(len(data), device=counts.device))
            return self.project(counts)

    return ByteHistogram()


@mmbind.hookimpl
def register_modalities(register):
    register(mmbind.Modality("caption", _load, _transform, default_encoder="caption-bytes", collate=_collate,
                             input_file=lambda x: None, description="captions given as strings (tests only)"))


@mmbind.hookimpl
def register_encoders(register):
    register(mmbind.EncoderSpec("caption-bytes", "caption", _byte_histogram, "byte histogram + linear"))
