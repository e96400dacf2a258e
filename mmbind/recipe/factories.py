"""A recipe's options checked against the plugin factories they are passed to.

``[data] options``, each tower's ``options`` (the encoder factory) and ``preprocess`` (the
modality's transform factory), and ``loss_options`` are keyword arguments of registered
factories. Their names and, where the factory annotates them, their types are checked against
each factory's signature when the recipe loads, so a typo costs no training time. This works
off the registered factories alone, so a plugin's factories are checked the same way as
mmbind's own: an author only writes a signature with annotations.
"""
from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from pydantic import ConfigDict, TypeAdapter, ValidationError

from mmbind.plugin.lazy import lazy
from mmbind.recipe.errors import did_you_mean, show, type_label

# TOML values are JSON-like, so options are validated as JSON would be: a list may fill a tuple
# and a string a Path, but a string is never a number, nor a number a boolean.
_STRICT = ConfigDict(strict=True, allow_inf_nan=False)


@dataclass(frozen=True)
class Factory:
    """A registered factory as a recipe sees it: what it is (for messages) and the keyword
    arguments that mmbind passes itself (``train`` of a transform), which a recipe may not set."""

    call: Callable[..., Any]
    owner: str  # "dataset 'digits-world'", "encoder 'audio-cnn-tiny'", ...
    reserved: tuple[str, ...] = ()


def option_problems(factory: Factory, options: dict[str, Any]) -> list[str]:
    """What is wrong with calling ``factory`` with ``options``: each problem one message
    ("unknown option 'widht' of encoder 'audio-cnn-tiny'; did you mean 'width'? ...");
    [] when they fit, or when the factory's signature cannot be read."""
    signature = _signature(factory.call)
    if signature is None:
        return []
    parameters = {name: p for name, p in signature.parameters.items()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    allowed = [name for name in parameters if name not in factory.reserved]
    found = []
    for name, value in options.items():
        if name in factory.reserved:
            found.append(f"option {name!r} of {factory.owner} is set by mmbind, not by a recipe")
        elif name in parameters:
            problem = _type_problem(parameters[name].annotation, value)
            if problem:
                found.append(f"option {name!r} of {factory.owner}: {problem}")
        elif not open_ended:
            found.append(f"unknown option {name!r} of {factory.owner}{did_you_mean(name, allowed)} "
                         f"(allowed: {', '.join(allowed) or 'none'})")
    for name, parameter in parameters.items():
        if parameter.default is parameter.empty and name not in options and name not in factory.reserved:
            found.append(f"{factory.owner} needs option {name!r}")
    return found


def call_problems(factory: Factory, options: dict[str, Any], calls: Iterable[dict[str, Any]]) -> list[str]:
    """Call ``factory`` once per set of ``calls`` arguments with ``options`` (a transform factory,
    cheap, that checks its values itself); each refusal as a message."""
    found = []
    for arguments in calls:
        try:
            factory.call(**arguments, **options)
        except Exception as error:  # noqa: BLE001 - whatever a plugin's factory raises is the recipe's problem here
            shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
            found.append(f"{factory.owner}{f' ({shown})' if shown else ''} refused {options!r}: {error}")
            break  # the same options fail the same way in the next call
    return found


def _signature(call: Callable[..., Any]) -> inspect.Signature | None:
    """The factory's signature with its annotations evaluated where they can be (those that name
    something imported only for type checkers stay strings and are not checked)."""
    try:
        target = call.resolve() if isinstance(call, lazy) else call
    except Exception:  # noqa: BLE001 - a plugin that cannot import fails, with its own error, when used
        return None
    for evaluate in (True, False):
        try:
            return inspect.signature(target, eval_str=evaluate)
        except (NameError, AttributeError, SyntaxError, TypeError):
            continue
        except ValueError:  # no signature (a builtin)
            return None
    return None


def _type_problem(annotation: Any, value: Any) -> str | None:
    """"expected an integer, got '5'" when ``value`` does not fit ``annotation``; None when it
    does or when the annotation is not a type pydantic can check."""
    adapter = _adapter(annotation)
    if adapter is None:
        return None
    try:
        adapter.validate_json(json.dumps(value, default=str))
    except ValidationError as error:
        if any(item["type"] == "finite_number" for item in error.errors()):
            return f"expected a finite number, got {show(value)}"
        return f"expected {type_label(annotation)}, got {show(value)}"
    return None


def _adapter(annotation: Any) -> TypeAdapter | None:
    if annotation is inspect.Parameter.empty or isinstance(annotation, str) or annotation is Any:
        return None
    try:
        return TypeAdapter(annotation, config=_STRICT)
    except Exception:  # noqa: BLE001 - a class pydantic does not know (a tensor, a generator): unchecked
        return None
