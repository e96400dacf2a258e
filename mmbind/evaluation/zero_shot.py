"""Zero-shot classification through prompts, OpenCLIP style: each class is the mean embedding of
its prompts (templates filled with the class name) in the prompt tower, renormalised; an input's
class scores are its cosine similarities to them. ``Binder.zero_shot`` and ``mmbind eval`` both
go through these functions."""
from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

import mmbind

DEFAULT_TEMPLATES = ("{}",)


class Encoder(Protocol):
    """What zero-shot needs of a model (a ``Binder`` has it): towers, ``encode``, logit scales."""

    modalities: list[str]

    def encode(self, inputs: Sequence[Any], modality: str, batch_size: int = ...) -> Any: ...

    def logit_scale(self, modality: str) -> Any: ...


def prompt_modality(binder: Encoder, asked: str | None = None) -> str | None:
    """The tower that embeds the prompts: ``asked`` (it must be a tower of the binder), else the
    binder's language tower (``Modality.language``; the first if there are several), else None."""
    if asked:
        if asked not in binder.modalities:
            raise ValueError(f"prompt modality {asked!r} is not a tower of this binder "
                             f"(towers: {', '.join(binder.modalities)})")
        return asked
    return next((m for m in binder.modalities if mmbind.get_modality(m).language), None)


def class_embeddings(binder: Encoder, class_names: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES,
                     modality: str | None = None) -> np.ndarray:
    """(C, D) unit vectors: per class, the mean of its prompts' embeddings, renormalised (as CLIP does)."""
    modality = _prompt_tower(binder, modality)
    for template in templates:
        if "{}" not in template:
            raise ValueError(f"template {template!r} has no '{{}}' for the class name")
    prompts = [t.format(name) for name in class_names for t in templates]
    embedded = binder.encode(prompts, modality=modality).reshape(len(class_names), len(templates), -1)
    means = embedded.mean(axis=1)
    return (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)


def zero_shot_scores(embeddings: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(N, C) cosine similarity of each unit embedding to each class embedding."""
    return np.asarray(embeddings, dtype=np.float32) @ classes.T


def zero_shot_predict(embeddings: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The index of the nearest class for each embedding."""
    return zero_shot_scores(embeddings, classes).argmax(axis=1)


def zero_shot(binder: Encoder, inputs: Sequence[Any], class_names: Sequence[str], *,
              templates: Sequence[str] = DEFAULT_TEMPLATES, modality: str, prompt_modality: str | None = None,
              batch_size: int = 32) -> np.ndarray:
    """(N, C) class probabilities: softmax over classes of ``logit_scale * cosine``.

    The logit scale is the prompt tower's (1 / its temperature, the scale at which its prompts
    were trained against the anchor), as OpenCLIP scales image-text similarities; it changes the
    confidence, never the ranking.
    """
    prompts = _prompt_tower(binder, prompt_modality)
    classes = class_embeddings(binder, class_names, templates, prompts)
    embeddings = binder.encode(list(inputs), modality=modality, batch_size=batch_size)
    logits = float(binder.logit_scale(prompts).detach()) * zero_shot_scores(embeddings, classes)
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def _prompt_tower(binder: Encoder, asked: str | None) -> str:
    """``prompt_modality``, required: a clear error when the binder has no language tower."""
    found = prompt_modality(binder, asked)
    if found is None:
        raise ValueError(f"zero-shot needs a language tower for the prompts; this binder has "
                         f"{', '.join(binder.modalities)} (name one with prompt_modality=...)")
    return found
