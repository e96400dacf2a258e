"""Devices and numeric precision, one policy for every command and API.

``resolve_device("auto")`` picks cuda, then mps, then cpu; "cpu", "cuda", "cuda:N" and "mps" are
checked against what this machine has, with an error that says what it has. Precision names are
fp32, bf16 and fp16: inference runs under autocast for the latter two (CPU autocast supports
bf16 only); training adds a gradient scaler for fp16.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, ContextManager

from mmbind.errors import UserError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")


class DeviceError(UserError, ValueError):
    """A device or precision this machine cannot give."""


def resolve_device(name: "str | torch.device | None" = "auto") -> "torch.device":
    """The torch.device for ``name`` (None and "auto": cuda, else mps, else cpu)."""
    import torch

    if isinstance(name, torch.device):
        return name
    text = (name or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise DeviceError(f"device {name!r}: expected one of {', '.join(DEVICES)}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(f"device {name!r}: this machine has no CUDA device (use --device auto or cpu)")
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {name!r}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")
    elif device.type == "mps" and not _mps_available():
        raise DeviceError(f"device {name!r}: MPS is not available on this machine (use --device auto or cpu)")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"device {name!r}: expected one of {', '.join(DEVICES)}")
    return device


def _mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise DeviceError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return precision


def autocast(device: "torch.device", precision: str) -> ContextManager[Any]:
    """The autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    import torch

    check_precision(precision)
    if precision == "fp32":
        return nullcontext()
    if precision == "fp16" and device.type == "cpu":
        raise DeviceError("precision 'fp16' needs a CUDA or MPS device; on the CPU use 'bf16' or 'fp32'")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
