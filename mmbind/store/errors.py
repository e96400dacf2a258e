"""The store's errors."""
from __future__ import annotations

from mmbind.errors import UserError


class StoreError(UserError, ValueError):
    """A store, collection or entry that cannot be used; the message says what was expected."""


class StoreLockedError(StoreError):
    """Another process is appending to this store."""


__all__ = ["StoreError", "StoreLockedError"]
