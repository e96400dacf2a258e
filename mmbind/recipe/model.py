"""The base of every configuration table (recipe tables, a binder's config.json)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigModel(BaseModel):
    """A table of settings. Unknown fields are errors; types are strict (the string "3" is not a
    number, true is not an integer); numbers are finite; assignments are validated like loading."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False)
