"""How much of a tower's encoder trains: all of it (the default), none (``freeze_encoder``), its
last N blocks (``train_last_blocks``), or LoRA adapters on named linear layers (``lora``,
through the peft library). The tower's head and temperature train in every case.

Partial fine-tuning is generic: an encoder's *blocks* are its longest ``nn.ModuleList`` of
modules of one class (timm's ``blocks``, OpenCLIP's ``resblocks``, transformers' ``layer``,
ImageBind's ``trunk.blocks``), and "the last N blocks" takes with them every parameter
registered after them (the final norm, pooling, projection). Modules whose parameters are all
frozen run in eval mode during training, so frozen normalisation statistics stay as loaded.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol

import torch.nn as nn


class Tuning(Protocol):
    """The fields of a tower (``mmbind.binder.TowerConfig``) that say what of its encoder trains."""

    freeze_encoder: bool
    train_last_blocks: int
    lora: dict[str, Any]

TUNING_FIELDS = ("freeze_encoder", "train_last_blocks", "lora")  # a tower's fields that say what trains
LORA_FIELDS = {"rank": "an integer >= 1", "alpha": "a number > 0", "target_modules": "a list of module names",
               "dropout": "a number in [0, 1)"}
LORA_DEFAULTS = {"alpha": None, "dropout": 0.0}  # alpha None: equal to rank (a scale of 1)
# peft's LoRA layer keeps the layer it adapts as ``base_layer``: "x.qkv.weight" becomes
# "x.qkv.base_layer.weight" and the adapters "x.qkv.lora_A.default.weight", "...lora_B...".
BASE_LAYER = ".base_layer."
LORA_MARK = ".lora_"


def check_tuning(tower: Tuning) -> None:
    """ValueError naming the field when a tower's fine-tuning fields do not fit together."""
    chosen = [name for name, on in (("freeze_encoder", tower.freeze_encoder),
                                    ("train_last_blocks", tower.train_last_blocks > 0),
                                    ("lora", bool(tower.lora))) if on]
    if len(chosen) > 1:
        raise ValueError(f"{' and '.join(chosen)}: choose one way to tune the encoder")
    if tower.train_last_blocks < 0:
        raise ValueError(f"train_last_blocks: expected an integer >= 0 (0: every block), got {tower.train_last_blocks}")
    if tower.lora:
        lora_settings(tower.lora)


def lora_settings(lora: Mapping[str, Any]) -> dict[str, Any]:
    """The ``lora`` table checked and completed: rank, alpha, target_modules, dropout."""
    unknown = [k for k in lora if k not in LORA_FIELDS]
    if unknown:
        raise ValueError(f"lora: unknown field {unknown[0]!r} (allowed: {', '.join(LORA_FIELDS)})")
    for key in ("rank", "target_modules"):
        if key not in lora:
            raise ValueError(f"lora: missing {key!r} ({LORA_FIELDS[key]})")
    settings = {**LORA_DEFAULTS, **lora}
    rank, alpha, targets, dropout = (settings[k] for k in ("rank", "alpha", "target_modules", "dropout"))
    if alpha is None:
        alpha = settings["alpha"] = rank
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    problems = [("rank", rank, isinstance(rank, int) and not isinstance(rank, bool) and rank >= 1),
                ("alpha", alpha, number(alpha) and alpha > 0),
                ("target_modules", targets, isinstance(targets, list) and targets
                 and all(isinstance(t, str) and t for t in targets)),
                ("dropout", dropout, number(dropout) and 0 <= dropout < 1)]
    for key, value, ok in problems:
        if not ok:
            raise ValueError(f"lora {key}: expected {LORA_FIELDS[key]}, got {value!r}")
    return settings


def apply_tuning(encoder: nn.Module, tower: Tuning, modality: str) -> nn.Module:
    """Set which of ``encoder``'s parameters train (and inject LoRA adapters); returns the encoder."""
    check_tuning(tower)
    if tower.freeze_encoder:
        encoder.requires_grad_(False)
    elif tower.train_last_blocks:
        train_last_blocks(encoder, tower.train_last_blocks, modality)
    elif tower.lora:
        add_lora(encoder, tower.lora, modality)
    return encoder


def find_blocks(encoder: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """(name, list) of the encoder's blocks: its longest ModuleList of modules of one class
    (ties: the one with more parameters), or None."""
    lists = [(name, m) for name, m in encoder.named_modules()
             if isinstance(m, nn.ModuleList) and len(m) and len({type(b) for b in m}) == 1]
    if not lists:
        return None
    return max(lists, key=lambda item: (len(item[1]), sum(p.numel() for p in item[1].parameters())))


def train_last_blocks(encoder: nn.Module, n: int, modality: str = "") -> None:
    """Train only the last ``n`` blocks and every parameter registered after them."""
    found = find_blocks(encoder)
    if found is None:
        raise ValueError(f"{modality} train_last_blocks: encoder {type(encoder).__name__} has no list of blocks "
                         f"(an nn.ModuleList of one kind of layer); freeze it or use lora instead")
    name, blocks = found
    if n > len(blocks):
        raise ValueError(f"{modality} train_last_blocks: {n} asked, the encoder has {len(blocks)} blocks ({name})")
    first = {id(p) for p in blocks[len(blocks) - n].parameters()}
    training = False
    for parameter in encoder.parameters():  # registration order: stem, blocks, then norm/head
        training = training or id(parameter) in first
        parameter.requires_grad_(training)


def add_lora(encoder: nn.Module, lora: Mapping[str, Any], modality: str = "") -> None:
    """Inject LoRA adapters (peft) into the encoder's ``target_modules``; only they train."""
    from peft import LoraConfig, inject_adapter_in_model

    settings = lora_settings(lora)
    config = LoraConfig(r=settings["rank"], lora_alpha=settings["alpha"], lora_dropout=settings["dropout"],
                        target_modules=list(settings["target_modules"]))
    try:
        inject_adapter_in_model(config, encoder)
    except ValueError as error:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in encoder.named_modules() if isinstance(m, nn.Linear)})
        raise ValueError(f"{modality} lora target_modules {settings['target_modules']}: {error}; the encoder's "
                         f"linear layers are named {', '.join(names) or 'nothing'}") from None


def base_name(key: str) -> str:
    """A state-dict key as it is without LoRA ("…qkv.base_layer.weight" -> "…qkv.weight")."""
    return key.replace(BASE_LAYER, ".")


def is_adapter(key: str) -> bool:
    """True for a LoRA adapter's tensor."""
    return LORA_MARK in key


def eval_frozen_parts(module: nn.Module) -> None:
    """Put every submodule whose parameters are all frozen in eval mode (dropout off, norm
    statistics fixed); modules that train keep their mode."""
    parameters = list(module.parameters())
    if parameters and not any(p.requires_grad for p in parameters):
        module.eval()
        return
    for child in module.children():
        eval_frozen_parts(child)
