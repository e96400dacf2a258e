"""Add the modalities of one dataset to another, paired by class.

A new modality (a plugin's sensor) often has data of its own but no images or text. Composed
with a dataset that has them (the digits world: images, text in 8 languages), each of its
samples pairs with the base's anchor samples of the same class, so the new modality is bound
to the anchor and gets zero-shot through the base's text tower and emergent retrieval with
every other modality, without a hand-written wrapper. In a recipe::

    [data]
    dataset = "digits-world"

    [[data.add]]
    dataset = "braille-sim"
    options = { n_per_class = 100 }
    modalities = ["braille"]       # optional: all of its modalities
"""
from __future__ import annotations

from typing import Sequence

from mmbind.plugin.specs import BindingData, ModalitySamples


class ComposeError(ValueError):
    """Two datasets that cannot be composed; the message says why."""


def compose_datasets(base: BindingData, extra: BindingData, modalities: Sequence[str] | None = None,
                     names: tuple[str, str] = ("base", "extra")) -> BindingData:
    """``base`` with ``extra``'s modalities (all, or ``modalities``) added to every split both have.

    Classes are matched by name (``extra``'s class names must be among ``base``'s), labels are
    renumbered to ``base``'s and keys become the class index, which pairs each sample with every
    base sample of its class: the base's keys must therefore start with the class index ("7" or
    "7/red"), as concept datasets' keys do. ``names`` label the datasets in error messages.
    """
    base_name, extra_name = names
    available = extra.modalities()
    chosen = list(modalities) if modalities is not None else available
    unknown = [m for m in chosen if m not in available]
    if unknown:
        raise ComposeError(f"{extra_name} has no modality {', '.join(map(repr, unknown))} (it has {', '.join(available)})")
    clash = [m for m in chosen if m in base.modalities()]
    if clash:
        raise ComposeError(f"{base_name} already has {', '.join(map(repr, clash))}: compose adds new modalities only")
    mapping = _class_mapping(base, extra, base_name, extra_name)
    _check_keys_start_with_class(base, base_name)
    splits = {split: dict(samples) for split, samples in base.splits.items()}
    for split, samples in extra.splits.items():
        if split not in splits:
            continue  # a split the base does not have has nothing to pair with
        for m in chosen:
            if m in samples:
                splits[split][m] = _relabelled(samples[m], mapping)
    if not any(m in splits[s] for s in splits for m in chosen):
        raise ComposeError(f"{extra_name} shares no split with {base_name} ({', '.join(extra.splits)} vs "
                           f"{', '.join(base.splits)})")
    return BindingData(splits, list(base.class_names), base.simulated | (extra.simulated & set(chosen)),
                       f"{base.description} + {', '.join(chosen)} from {extra_name}".strip(" +"))


def _class_mapping(base: BindingData, extra: BindingData, base_name: str, extra_name: str) -> list[int]:
    index = {name.strip().lower(): i for i, name in enumerate(base.class_names)}
    missing = [name for name in extra.class_names if name.strip().lower() not in index]
    if missing or not extra.class_names:
        raise ComposeError(f"compose pairs by class name: {extra_name}'s classes "
                           f"{', '.join(map(repr, missing or ['(none)']))} are not among {base_name}'s "
                           f"({', '.join(base.class_names)})")
    return [index[name.strip().lower()] for name in extra.class_names]


def _check_keys_start_with_class(base: BindingData, base_name: str) -> None:
    for split, samples in base.splits.items():
        for m, s in samples.items():
            for label, key in zip(s.labels, s.keys):
                if label >= 0 and key.split("/")[0] != str(label):
                    raise ComposeError(f"compose pairs by class, so {base_name}'s keys must start with the class "
                                       f"index ('7' or '7/red'); split {split!r}, modality {m!r} has key {key!r} "
                                       f"for class {label}")
                break  # the first labelled sample of each modality shows the convention


def _relabelled(samples: ModalitySamples, mapping: list[int]) -> ModalitySamples:
    labels = [mapping[label] if label >= 0 else -1 for label in samples.labels]
    keys = [str(label) if label >= 0 else f"unlabelled/{i}" for i, label in enumerate(labels)]
    return ModalitySamples(samples.inputs, labels, keys, samples.meta)
