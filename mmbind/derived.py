"""Binders made from another binder, their *base* (an imported ImageBind, say): they load the
base's weights for the towers they share with it and save only what differs from it.

A derived binder's config.json names its base (``"base": {"path": ..., "sha256": ...}``, the
hash of the base's weights file, checked on load) and its model.safetensors holds only the
tensors that are not the base's: LoRA adapters, trained blocks and heads, new towers. A base
may itself be derived; its own base is loaded first.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from mmbind.errors import CheckpointError
from mmbind.finetune import base_name, is_adapter

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_READ_BLOCK = 1 << 22


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def read_config(directory: str | Path) -> dict[str, Any]:
    """A binder folder's config.json as a dict; CheckpointError naming the folder if absent."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path} not found: expected a folder written by Binder.save_pretrained "
                              f"(or by `mmbind import`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: not a binder config (JSONDecodeError: {error}); expected the config.json "
                              f"written by Binder.save_pretrained") from None


def reference(base: str | Path) -> dict[str, str]:
    """What a derived binder records of its base: the folder and its weights' hash."""
    base = Path(base).resolve()
    read_config(base)
    weights = base / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{weights}: no such weights file (the base binder's)")
    return {"path": str(base), "sha256": file_sha256(weights)}


def resolve(recorded: Mapping[str, str], directory: Path, override: str | Path | None = None) -> Path:
    """The base folder of the binder in ``directory``: ``override`` if given, else the recorded
    path; its weights must hash to the recorded sha256."""
    base = Path(override) if override is not None else Path(recorded["path"])
    weights = base / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{directory}: its base binder {base} is missing (no {WEIGHTS_NAME}); this binder "
                              f"saves only what differs from its base: put the base there, or pass base=... "
                              f"to Binder.from_pretrained")
    if file_sha256(weights) != recorded["sha256"]:
        raise CheckpointError(f"{directory}: its base {base} is not the binder it was made from (the weights' "
                              f"sha256 differs from the recorded {recorded['sha256'][:12]}...)")
    return base


def base_tensors(base: Path) -> dict[str, Path]:
    """Every tensor name the base provides (LoRA's ``base_layer`` removed) -> the file holding it,
    through the chain of bases (nearer files win)."""
    from safetensors import safe_open

    config = read_config(base)
    found = base_tensors(resolve(config["base"], base)) if "base" in config else {}
    with safe_open(str(base / WEIGHTS_NAME), "pt") as weights:
        found.update({base_name(k): base / WEIGHTS_NAME for k in weights.keys()})
    return found


def _stream(files: Mapping[str, Path], names: list[str]) -> Iterator[tuple[str, torch.Tensor]]:
    """(base name, tensor) for ``names``, read one at a time from the files that hold them, so
    that no more than one tensor of the base is in memory at once."""
    from safetensors import safe_open

    by_file: dict[Path, list[str]] = {}
    for name in names:
        by_file.setdefault(files[name], []).append(name)
    for path, wanted in by_file.items():
        with safe_open(str(path), "pt") as weights:
            stored = {base_name(k): k for k in weights.keys()}
            for name in wanted:
                yield name, weights.get_tensor(stored[name])


def load_base(module: torch.nn.Module, base: Path, towers: list[str]) -> set[str]:
    """Copy the base's tensors of ``towers`` into ``module`` (a Binder); returns the keys filled.
    CheckpointError if the base lacks one of those towers' tensors or holds one of another shape."""
    files = base_tensors(base)
    state = module.state_dict()
    # keys are "encoders.<modality>....", "heads.<modality>....", "log_scales.<modality>"
    wanted = {k: base_name(k) for k in state if k.split(".")[1] in towers}
    # LoRA adapters come from the base only if it has them (a base tuned the same way)
    missing = sorted(name for key, name in wanted.items() if name not in files and not is_adapter(key))
    wanted = {key: name for key, name in wanted.items() if name in files}
    if missing:
        raise CheckpointError(f"{base}: the base binder lacks {len(missing)} tensor(s) of the towers "
                              f"{', '.join(towers)} (e.g. {', '.join(missing[:3])})")
    keys = {name: key for key, name in wanted.items()}
    with torch.no_grad():
        for name, tensor in _stream(files, list(keys)):
            target = state[keys[name]]
            if target.shape != tensor.shape:
                raise CheckpointError(f"{base}: {name} has shape {tuple(tensor.shape)}, this binder's "
                                      f"{keys[name]} {tuple(target.shape)}")
            target.copy_(tensor)
    return set(wanted)


def differing(state: Mapping[str, torch.Tensor], base: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``state`` that the base does not hold identically (copies, contiguous)."""
    files = base_tensors(base)
    keys = {base_name(k): k for k in state if base_name(k) in files}
    same = {keys[name] for name, stored in _stream(files, list(keys))
            if stored.shape == state[keys[name]].shape and torch.equal(stored, state[keys[name]].detach().cpu())}
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items() if k not in same}


def load_own(module: torch.nn.Module, path: Path, from_base: set[str]) -> None:
    """Load a derived binder's own tensors (``path``) over what came from its base
    (``from_base``, the keys filled by ``load_base``); every key must come from one or the other."""
    from safetensors import SafetensorError, safe_open

    state = module.state_dict()
    try:
        with safe_open(str(path), "pt") as weights:
            own = {k: weights.get_tensor(k) for k in weights.keys()}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    unexpected = sorted(set(own) - set(state))
    missing = sorted(set(state) - set(own) - from_base)
    if unexpected or missing:
        raise CheckpointError(f"{path}: its weights do not fit the model of config.json beside it (missing: "
                              f"{', '.join(missing[:5]) or 'none'}; unexpected: {', '.join(unexpected[:5]) or 'none'})")
    with torch.no_grad():
        for key, tensor in own.items():
            if state[key].shape != tensor.shape:
                raise CheckpointError(f"{path}: {key} has shape {tuple(tensor.shape)}, expected {tuple(state[key].shape)}")
            state[key].copy_(tensor)
