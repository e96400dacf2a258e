"""Reading weight files safely: safetensors, or PyTorch files with ``weights_only=True`` (never
a general unpickle, which would run code from the file). Errors name the file."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from mmbind.errors import CheckpointError


def load_torch_file(path: str | Path, mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)``: tensors, numbers, strings and containers only.

    A file holding other objects is refused (never unpickled); ``mmap`` maps the tensors from
    disk instead of reading them (only what is used is read: a 4.5 GB checkpoint costs little)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: refused to unpickle: the file holds objects other than tensors and plain "
                              f"values, and loading them would run code from it ({first})") from None
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable PyTorch weights file ({error})") from None


def load_safetensors_into(module: Any, path: str | Path, strict: bool = True) -> None:
    """Load a .safetensors file into ``module`` (as safetensors' ``load_model``), naming the file on error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    try:
        load_model(module, str(path), strict=strict, device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    except RuntimeError as error:  # missing or unexpected keys, shape mismatches
        raise CheckpointError(f"{path}: its weights do not fit the model of config.json beside it ({error})") from None
