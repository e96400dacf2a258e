"""The base of every configuration table (recipe tables, a binder's config.json)."""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class ConfigModel(BaseModel):
    """A table of settings. Unknown fields are errors; types are strict (the string "3" is not a
    number, true is not an integer); numbers are finite; assignments are validated like loading."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False)
    # Fields that may also be given by position, as the dataclasses these models replaced allowed
    # (``TowerConfig("audio-cnn-tiny", head="mlp")``).
    positional_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, /, *args: Any, **data: Any) -> None:
        if len(args) > len(self.positional_fields):
            raise TypeError(f"{type(self).__name__} takes at most {len(self.positional_fields)} positional "
                            f"arguments ({', '.join(self.positional_fields) or 'none'}), got {len(args)}")
        for name, value in zip(self.positional_fields, args):
            if name in data:
                raise TypeError(f"{type(self).__name__} got {name!r} by position and by name")
            data[name] = value
        super().__init__(**data)
