"""Configuration errors in one style: the file, the table and field, what was wrong, what is allowed.

pydantic's ValidationError is translated here into lines such as
``recipes/digits.toml: [bind] batch_size: expected an integer >= 1, got 0``.
"""
from __future__ import annotations

import difflib
import inspect
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from mmbind.errors import UserError

Location = tuple[str | int, ...]

_KINDS: dict[Any, str] = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
                          dict: "a table", list: "a list", tuple: "a list"}
_BOUNDS = {"greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">"),
           "less_than_equal": ("le", "<="), "less_than": ("lt", "<")}


class ConfigError(UserError, ValueError):
    """A configuration that cannot be used; the message names the file, table, field and what is allowed.
    A UserError: the CLI prints it as one clean message and exits with status 1."""


class RecipeError(ConfigError):
    """A recipe that cannot run; raised when it is loaded, before any work starts."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration."""

    location: Location  # where pydantic found it, e.g. ("modalities", "audio", "head")
    where: str  # the same for a reader: "[modalities.audio] head"
    field: str | None  # the field's name, None when the problem is a whole table
    message: str  # what was wrong and what is allowed

    def describe(self, source: str) -> str:
        return f"{source}: {self.where}: {self.message}"


def show(value: Any) -> str:
    """A value as a recipe (TOML) writes it."""
    return ("true" if value else "false") if isinstance(value, bool) else repr(value)


def did_you_mean(name: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(name, allowed, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def problems(error: ValidationError, model: type[BaseModel], prefix: Location = (),
             root: str = "recipe") -> list[Problem]:
    """Each error of ``error`` (raised validating ``model``) as a Problem. ``prefix`` is where
    ``model`` sits in its file (("eval",) for an assignment to recipe.eval); ``root`` names the
    file's top level."""
    found = []
    for item in error.errors():
        location = tuple(item["loc"])
        kind = item["type"]
        if kind in ("missing", "extra_forbidden"):  # the problem is the table's: a key it lacks or has
            place = _locate(model, location[:-1], prefix, root)
            name = str(location[-1])
            if kind == "missing":
                message = f"missing required field {name!r}"
            else:
                allowed = list(place.model.model_fields) if place.model is not None else []
                message = f"unknown field {name!r}{did_you_mean(name, allowed)} (allowed: {', '.join(allowed)})"
            found.append(Problem(prefix + location, place.table, None, message))
            continue
        place = _locate(model, location, prefix, root)
        message = _message(kind, item, place.annotation)
        if place.rest:
            message = f"item {place.rest[0]}: {message}"
        where = f"{place.table} {place.field}" if place.field else place.table
        found.append(Problem(prefix + location, where, place.field, message))
    return found


def explain(error: ValidationError, model: type[BaseModel], source: str, *, prefix: Location = (),
            root: str = "recipe", error_type: type[ConfigError] = ConfigError) -> ConfigError:
    """``error`` as one ConfigError (of ``error_type``), a line per problem."""
    return error_type("\n".join(p.describe(source) for p in problems(error, model, prefix, root)))


@dataclass
class _Place:
    table: str  # "[anchor.pretrain]", or the root's name at the top level
    model: type[BaseModel] | None  # the table's model
    field: str | None
    annotation: Any  # the type expected at the location
    rest: Location  # what is left of the location below the field (a list index)


def _locate(model: type[BaseModel], location: Location, prefix: Location, root: str) -> _Place:
    """Walk ``location`` through the models' fields: tables (nested models, or a dict of them,
    as [modalities.<name>]) are collected until the field."""
    tables = [str(p) for p in prefix]
    entry: int | None = None  # the index into an array of tables ([[data.add]]) that is being walked
    current: type[BaseModel] = model
    i = 0
    while i < len(location):
        key = location[i]
        field = current.model_fields.get(key) if isinstance(key, str) else None
        if field is None:
            return _Place(_table(tables, root, entry), current, str(key), None, location[i + 1:])
        table, values = _model(field.annotation), _dict_of_models(field.annotation)
        items = _list_of_models(field.annotation)
        if table is not None:
            tables.append(key)
            current, i = table, i + 1
        elif values is not None and i + 1 < len(location):
            tables.append(f"{key}.{location[i + 1]}")
            current, i = values, i + 2
        elif items is not None and i + 1 < len(location) and isinstance(location[i + 1], int):
            tables.append(key)
            entry, current, i = location[i + 1], items, i + 2
        else:
            annotation = field.annotation
            for _ in location[i + 1:]:  # into the items of a list or the values of a dict
                args = get_args(_strip(annotation))
                annotation = args[-1] if args else Any
            return _Place(_table(tables, root, entry), current, key, annotation, location[i + 1:])
    return _Place(_table(tables, root, entry), current, None, dict, ())


def _table(tables: list[str], root: str, entry: int | None = None) -> str:
    """"[anchor.pretrain]"; an entry of an array of tables as "[[data.add]] #1" (counted from 1)."""
    if entry is not None:
        return f"[[{'.'.join(tables)}]] #{entry + 1}"
    return f"[{'.'.join(tables)}]" if tables else root


def _strip(annotation: Any) -> Any:
    """Annotated[X, ...] and X | None -> X."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType) and type(None) in get_args(annotation):
            rest = [a for a in get_args(annotation) if a is not type(None)]
            if len(rest) != 1:
                return annotation
            annotation = rest[0]
        else:
            return annotation


def _model(annotation: Any) -> type[BaseModel] | None:
    annotation = _strip(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _list_of_models(annotation: Any) -> type[BaseModel] | None:
    annotation = _strip(annotation)
    return _model(get_args(annotation)[0]) if get_origin(annotation) is list else None


def _dict_of_models(annotation: Any) -> type[BaseModel] | None:
    annotation = _strip(annotation)
    return _model(get_args(annotation)[1]) if get_origin(annotation) is dict else None


def _kind(annotation: Any) -> str | None:
    annotation = _strip(annotation)
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(map(repr, get_args(annotation)))
    return _KINDS.get(get_origin(annotation) or annotation)


def type_label(annotation: Any) -> str:
    """A type as a recipe's reader knows it: "an integer", "one of 'a', 'b'", else as Python writes it."""
    return _kind(annotation) or inspect.formatannotation(_strip(annotation))


def _message(kind: str, item: dict[str, Any], annotation: Any) -> str:
    got = f"got {show(item['input'])}"
    context = item.get("ctx") or {}
    label = _kind(annotation) or "a value of another type"
    if kind in _BOUNDS:
        key, sign = _BOUNDS[kind]
        bound = context[key]
        bound = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
        return f"expected {label} {sign} {bound}, {got}"
    if kind == "finite_number":
        return f"expected a finite number, {got}"
    if kind == "string_too_short":
        return f"expected a non-empty string, {got}"
    if kind == "too_short":
        return f"expected at least {context['min_length']} item(s), {got}"
    if kind in ("value_error", "assertion_error"):
        return str(context["error"])
    if kind.endswith(("_type", "_parsing", "_error")) or kind == "int_from_float":
        return f"expected {label}, {got}"
    return f"{item['msg'][0].lower()}{item['msg'][1:]}, {got}"
