"""The plugin conformance suite behind ``mmbind check-plugin`` and ``mmbind.testing``.

It runs what a plugin registered through the contract the core relies on (docs/hooks.md):
example inputs through load, transform (eval and train), collate and the default encoder;
``output_dim`` against the real output; bad inputs (a missing file, an empty file, NaN values,
a pickled .npy, an absurd shape) must raise ``InputError`` naming the input; eval transforms
are deterministic; train transforms draw only from the global generators (resume relies on
it); factories can be called twice; the plugin module imports no heavy library; it declares
the plugin API it was written for.
"""
from __future__ import annotations

import math
import random
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from mmbind.errors import InputError
from mmbind.plugin.hookspecs import PLUGIN_API
from mmbind.plugin.specs import Modality, collate_batch

HEAVY_MODULES = ("torch", "timm", "transformers", "torchaudio", "torchvision", "umap", "sklearn")
WEIRD_SHAPE = (2, 3, 2, 3, 2)  # five dimensions: no raw input of a built-in kind has them
SEED = 1234


@dataclass
class Check:
    """One check: what was checked, whether it passed, and why not (or why it was skipped)."""

    name: str
    passed: bool
    detail: str = ""
    skipped: bool = False


class Skip(Exception):
    """A check that cannot run for this registration (e.g. an encoder that needs a model folder)."""


@dataclass
class Report:
    """Every check run for one plugin."""

    plugin: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.passed for check in self.checks)

    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def summary(self) -> str:
        lines = [f"plugin {self.plugin!r}: {sum(c.passed for c in self.checks)}/{len(self.checks)} checks passed"]
        lines += [f"  {'skip' if c.skipped else 'ok  ' if c.passed else 'FAIL'} {c.name}"
                  + (f": {c.detail}" if c.detail else "") for c in self.checks]
        return "\n".join(lines)


def check_plugin(name: str) -> Report:
    """Run the suite on everything the plugin ``name`` registered (it must be loaded)."""
    from mmbind.plugin.manager import load_plugins, pm, registries

    load_plugins()
    module = pm.get_plugin(name)
    if module is None:
        known = ", ".join(sorted(n for n, _ in pm.list_name_plugin()))
        raise KeyError(f"no plugin {name!r} is loaded (plugins: {known})")
    report = Report(name)
    run = _Runner(report)
    run.check("declares PLUGIN_API", lambda: _declares_api(module))
    run.check("imports no heavy library at import time", lambda: _light_import(module))
    owned = {kind: [n for n in registry.list() if registry.owner(n) == name]
             for kind, registry in registries().items()}
    for modality in owned["modalities"]:
        _check_modality(run, registries()["modalities"].get(modality))
    for encoder in owned["encoders"]:
        run.check(f"encoder {encoder}: factory can be called twice", lambda e=encoder: _encoder_twice(e))
    for loss in owned["losses"]:
        run.check(f"loss {loss}: factory twice, finite scalar on unit vectors", lambda n=loss: _loss(n))
    if not any(owned.values()):
        report.checks.append(Check("registers something", False, "the plugin registered nothing"))
    return report


class _Runner:
    def __init__(self, report: Report) -> None:
        self.report = report

    def check(self, name: str, function: Callable[[], str | None]) -> bool:
        try:
            detail = function() or ""
        except Skip as reason:
            self.report.checks.append(Check(name, True, str(reason), skipped=True))
            return False
        except Exception as error:  # a failing check is a finding, not a crash of the checker
            self.report.checks.append(Check(name, False, f"{type(error).__name__}: {error}"))
            return False
        self.report.checks.append(Check(name, True, detail))
        return True


# --- module-level checks ----------------------------------------------------------------------------
def _declares_api(module: Any) -> str:
    declared = getattr(module, "PLUGIN_API", None)
    if declared is None:
        raise AssertionError(f"add `PLUGIN_API = {PLUGIN_API}` to the plugin module")
    if declared != PLUGIN_API:
        raise AssertionError(f"declares {declared!r}; this mmbind provides {PLUGIN_API}")
    return f"API {declared}"


def _light_import(module: Any) -> str:
    name = getattr(module, "__name__", "")
    code = (f"import sys; import {name}; "
            f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode != 0:
        raise Skip(f"{name} is not importable in a fresh process (registered in-process?)")
    heavy = result.stdout.strip()
    if heavy:
        raise AssertionError(f"importing {name} loads {heavy}: import them inside the functions that use them")
    return ""


# --- modality checks --------------------------------------------------------------------------------
def _check_modality(run: _Runner, spec: Modality) -> None:
    m = spec.name
    examples: list[Any] = []

    def get_examples() -> str:
        if spec.example_inputs is None:
            raise AssertionError("no example_inputs: give a few raw inputs so that the modality can be checked")
        examples.extend(spec.example_inputs())
        if len(examples) < 2:
            raise AssertionError(f"example_inputs gave {len(examples)} inputs; give at least 2 (a batch)")
        return f"{len(examples)} inputs"

    if not run.check(f"modality {m}: example_inputs", get_examples):
        return
    raws: list[Any] = []
    if not run.check(f"modality {m}: load accepts its examples", lambda: raws.extend(spec.load(x) for x in examples)):
        return
    run.check(f"modality {m}: eval transform is deterministic", lambda: _deterministic(spec, raws))
    run.check(f"modality {m}: train transform draws only from the global generators", lambda: _seeded(spec, raws))
    run.check(f"modality {m}: collate + default encoder {spec.default_encoder!r} give (B, output_dim), finite",
              lambda: _through_encoder(spec, raws))
    for label, make in _bad_inputs(spec, examples):
        run.check(f"modality {m}: {label} raises InputError naming it", lambda make=make: _rejects(spec, make))


def _same(a: Any, b: Any) -> bool:
    if hasattr(a, "detach"):
        a, b = a.detach().cpu().numpy(), b.detach().cpu().numpy()
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    return a == b


def _deterministic(spec: Modality, raws: list[Any]) -> str:
    first = [spec.transform(train=False)(raw) for raw in raws]
    _seed_globals(SEED + 1)  # a different global state must not change an eval transform either
    second = [spec.transform(train=False)(raw) for raw in raws]
    if not all(_same(a, b) for a, b in zip(first, second)):
        raise AssertionError("transform(train=False) gave different outputs for the same input: it must be pure "
                             "(its outputs are cached)")
    return ""


def _seed_globals(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _seeded(spec: Modality, raws: list[Any]) -> str:
    outputs = []
    for _ in range(2):
        _seed_globals(SEED)
        transform = spec.transform(train=True)
        outputs.append([transform(raw) for raw in raws])
    if not all(_same(a, b) for a, b in zip(*outputs)):
        raise AssertionError("transform(train=True) gave different outputs after the same global seeds: draw "
                             "randomness from torch/numpy/random's global generators, not a private one")
    return ""


def _through_encoder(spec: Modality, raws: list[Any]) -> str:
    import torch

    from mmbind.plugin.manager import registries

    transform = spec.transform(train=False)
    items = [transform(raw) for raw in raws]
    encoder = registries()["encoders"].get(spec.default_encoder).factory()
    encoder.eval()
    batch = collate_batch(items, spec, encoder)
    with torch.no_grad():
        out = encoder(batch)
    expected = (len(items), int(encoder.output_dim))
    if tuple(out.shape) != expected:
        raise AssertionError(f"output shape {tuple(out.shape)}, expected (batch, output_dim) = {expected}")
    if not torch.isfinite(out).all():
        raise AssertionError("the output has NaN or inf values")
    return f"output {expected}"


def _bad_inputs(spec: Modality, examples: list[Any]) -> Iterator[tuple[str, Callable[[Path], Any]]]:
    """(what, make(tmp) -> bad input) pairs for the bad inputs that apply to this modality."""
    extension = spec.extensions[0] if spec.extensions else ".bin"
    if spec.input_file(str(Path("missing") / f"x{extension}")) is not None:
        yield f"a missing {extension} file", lambda tmp: str(tmp / f"missing{extension}")
        yield f"an empty {extension} file", lambda tmp: _write(tmp / f"empty{extension}", b"")
    if any(isinstance(x, np.ndarray) and x.dtype.kind == "f" for x in examples):
        array = next(x for x in examples if isinstance(x, np.ndarray) and x.dtype.kind == "f")
        yield "an array with NaN values", lambda tmp: np.full_like(array, np.nan)
    if any(isinstance(x, np.ndarray) for x in examples):
        yield f"an array of shape {WEIRD_SHAPE}", lambda tmp: np.zeros(WEIRD_SHAPE, dtype=np.float32)
    if ".npy" in spec.extensions:
        yield "a pickled .npy file (never unpickled)", _pickled_npy


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


class _Tripwire:
    """Unpickling this creates a file: proof that a loader ran pickle on a user file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (Path(self.marker),))


def _pickled_npy(tmp: Path) -> str:
    path = tmp / "pickled.npy"
    array = np.empty(1, dtype=object)
    array[0] = _Tripwire(str(tmp / "UNPICKLED"))
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=True)
    return str(path)


def _rejects(spec: Modality, make: Callable[[Path], Any]) -> str:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        bad = make(tmp)
        raised: Exception | None = None
        try:
            spec.transform(train=False)(spec.load(bad))
        except Exception as error:  # judged below: only an InputError naming the input is right
            raised = error
        if (tmp / "UNPICKLED").exists():
            raise AssertionError("the loader unpickled a user file")
    if raised is None:
        raise AssertionError("accepted without an InputError")
    if not isinstance(raised, InputError):
        raise AssertionError(f"raised {type(raised).__name__} ({raised}), not an InputError naming the input")
    if isinstance(bad, str) and Path(bad).name not in str(raised):
        raise AssertionError(f"the InputError does not name the file: {raised}")
    return str(raised)[:100]


# --- encoders and losses ----------------------------------------------------------------------------
def _encoder_twice(name: str) -> str:
    import torch

    from mmbind.plugin.manager import registries

    spec = registries()["encoders"].get(name)
    options = {"pretrained": False} if spec.pretrained else {}
    with torch.device("meta"):  # shapes only: a ViT-H builds in a moment and takes no memory
        try:
            first = spec.factory(**options)
        except (TypeError, ValueError) as error:  # it needs options only its user can give
            raise Skip(f"cannot be built without options ({error})") from None
        second = spec.factory(**options)
    if first is second:
        raise AssertionError("the factory returned the same module twice: build a new one per call")
    for module in (first, second):
        if not isinstance(getattr(module, "output_dim", None), int):
            raise AssertionError(f"the module has no int output_dim (got {getattr(module, 'output_dim', None)!r})")
    return f"output_dim {first.output_dim}"


def _loss(name: str) -> str:
    import torch
    import torch.nn.functional as F

    from mmbind.plugin.manager import registries

    factory = registries()["losses"].get(name).factory
    loss = factory()
    factory()
    generator = torch.Generator().manual_seed(SEED)
    anchor = F.normalize(torch.randn(8, 16, generator=generator), dim=-1)
    other = F.normalize(torch.randn(8, 16, generator=generator), dim=-1)
    value = loss(anchor, other, torch.tensor(10.0), torch.arange(8) % 4).detach()
    if value.ndim != 0 or not math.isfinite(float(value)):
        raise AssertionError(f"expected a finite scalar, got {value!r}")
    return f"{float(value):.3f}"


__all__ = ["Check", "Report", "check_plugin"]
