"""The store's errors."""
from __future__ import annotations


class StoreError(ValueError):
    """A store, collection or entry that cannot be used; the message says what was expected."""


class StoreLockedError(StoreError):
    """Another process is appending to this store."""


__all__ = ["StoreError", "StoreLockedError"]
