"""Experiment tracking: the run-event hooks (``on_train_start``, ``on_step_end``,
``on_epoch_end``, ``on_eval_end``) and the built-in trackers that implement them.

A tracker is a hook implementation registered with the plugin manager while a run lasts: the
recipe's ``[log] trackers`` names the built-in ones (``TRACKERS``); any installed plugin may
implement the same hooks itself. Every record a tracker sees was first written to
``metrics.jsonl``, which stays the record of truth. Rank 0 alone emits events.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from mmbind import distributed as dist
from mmbind.plugin.hookspecs import hookimpl
from mmbind.tracking.builtin import TRACKERS

if TYPE_CHECKING:
    from mmbind.recipe import Recipe

logger = logging.getLogger(__name__)
_active: set[Path] = set()  # run folders whose trackers are open (nested tracking() is a no-op)


def emit(hook: str, **kwargs: Any) -> None:
    """Call every implementation of a run-event hook on rank 0, under the plugin failure policy
    (a failing tracker is reported as a warning; training goes on). Each implementation gets
    the arguments it names."""
    if not dist.is_main():
        return
    from mmbind.plugin.manager import call_plugin, load_plugins, pm

    load_plugins()
    for impl in getattr(pm.hook, hook).get_hookimpls():
        call_plugin(impl.plugin_name, impl.function, **{name: kwargs[name] for name in impl.argnames})


def create_tracker(name: str, recipe: "Recipe", run_dir: Path) -> Any:
    import importlib

    module, _, cls = TRACKERS[name].partition(":")
    try:
        return getattr(importlib.import_module(module), cls)(recipe, run_dir)
    except ImportError as error:
        from mmbind.errors import UserError

        raise UserError(f"[log] trackers: {name!r} needs a package that is not installed ({error}); "
                        f"pip install 'mmbind[tracking]'") from None


@contextlib.contextmanager
def tracking(recipe: "Recipe", run_dir: str | Path) -> Iterator[None]:
    """Open the recipe's trackers on rank 0 and register them as hook implementations for the
    block; closed (files flushed, the W&B run finished) when it ends. Nested calls for the same
    run folder reuse the open trackers, so ``mmbind run`` logs training and evaluation to one run."""
    run_dir = Path(run_dir).resolve()
    names = list(getattr(getattr(recipe, "log", None), "trackers", []) or [])
    if not names or not dist.is_main() or run_dir in _active:
        yield
        return
    from mmbind.plugin.manager import pm

    opened = []
    _active.add(run_dir)
    try:
        for name in names:
            tracker = create_tracker(name, recipe, run_dir)
            opened.append(tracker)
            pm.register(tracker, name=f"tracker-{name}")
        yield
    finally:
        _active.discard(run_dir)
        for tracker in opened:
            pm.unregister(tracker)
            try:
                tracker.close()
            except Exception as error:  # a tracker that cannot close must not hide the run's own error
                logger.warning("closing the %s tracker failed: %s: %s", tracker.name, type(error).__name__, error)


def record_scalars(record: dict[str, Any]) -> dict[str, float]:
    """A metrics.jsonl record's numeric fields as ``<stage>/<field>`` tags (stage, epoch and step
    are the axes, not values)."""
    stage = record.get("stage", "run")
    return {f"{stage}/{key}": float(value) for key, value in record.items()
            if key not in ("stage", "epoch", "step") and isinstance(value, (int, float)) and not isinstance(value, bool)}


def eval_scalars(results: dict[str, Any]) -> dict[str, float]:
    """The headline numbers of ``evaluate_run``'s results (docs/evaluation.md) as tags:
    ``eval/<split>/<modality>/<metric>`` per row and ``eval/<split>/<query>-><gallery>/R@K``."""
    out: dict[str, float] = {}
    for row in results.get("rows", []):
        prefix = f"eval/{row['split']}/{row['modality']}"
        out.update({f"{prefix}/{k}": float(v) for k, v in row.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)})
    for pair in results.get("retrieval", []):
        prefix = f"eval/{pair['split']}/{pair['query']}->{pair['gallery']}"
        out.update({f"{prefix}/{k}": float(v) for k, v in pair.items() if k.startswith("R@") and v is not None})
    return out


class Tracker:
    """A built-in tracker's hook implementations; subclasses write ``log(values, step, axis)``."""

    name = "tracker"

    def __init__(self) -> None:
        self.steps: dict[str, int] = {}  # records seen per stage: the step of records without one
        self.last_step = 0

    def log(self, values: dict[str, float], step: int, axis: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def on_record(self, record: dict[str, Any], axis: str) -> None:
        stage = record.get("stage", "run")
        self.steps[stage] = self.steps.get(stage, 0) + 1
        step = int(record.get(axis, self.steps[stage]))
        if axis == "step":
            self.last_step = max(self.last_step, step)
        values = record_scalars(record)
        if values:
            self.log(values, step, f"{stage}/{axis}")

    @hookimpl
    def on_step_end(self, record: dict[str, Any]) -> None:
        self.on_record(record, "step")

    @hookimpl
    def on_epoch_end(self, record: dict[str, Any]) -> None:
        self.on_record(record, "epoch")
