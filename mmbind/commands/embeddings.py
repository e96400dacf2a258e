"""`mmbind embed`, `mmbind search`, `mmbind arith` and `mmbind index`.

Heavy imports (h5py, numpy, torch through the binder, faiss) happen inside the commands.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from mmbind.commands.options import device_option

if TYPE_CHECKING:
    from mmbind.plugin.specs import Modality
    from mmbind.store import EmbedItem

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "KIB": 2**10, "M": 1e6, "MB": 1e6, "MIB": 2**20,
          "G": 1e9, "GB": 1e9, "GIB": 2**30, "T": 1e12, "TB": 1e12, "TIB": 2**40}


def parse_size(text: str) -> int:
    """'256MB' -> 256000000, '256MiB' -> 268435456, '1000' -> 1000."""
    match = _SIZE.match(text)
    unit = (match.group(2) or "").upper() if match else None
    if not match or unit not in _UNITS:
        raise click.BadParameter(f"{text!r}: expected a size such as 268435456, 256MB or 256MiB",
                                 param_hint="--memory-budget")
    return int(float(match.group(1)) * _UNITS[unit])


class _LeadingMinus(click.Command):
    """A command whose positional expressions may start with ``-`` (``-0.5*id:a/#1 + ...``):
    such an argument is not taken for an option (the arguments are reordered around ``--``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" not in args and any(_LEADING_MINUS.match(a) for a in args):
            positionals, options = _split_positionals(self, args)
            args = options + ["--"] + positionals
        return super().parse_args(ctx, args)


# "-0.5*...", "-.5*...", "-(...)", "- id:...", "-id:a/#1", "-text:'...'": an expression, not an option
_LEADING_MINUS = re.compile(r"^-(\s|\d|\.|\(|[A-Za-z_][\w-]*:)")


def _split_positionals(command: click.Command, args: list[str]) -> tuple[list[str], list[str]]:
    """(the positional arguments, the options with their values) of ``args``, each in order."""
    takes_value = {name for param in command.params if isinstance(param, click.Option) and not param.is_flag
                   and not param.count for name in param.opts + param.secondary_opts}
    positionals: list[str] = []
    options: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-") and len(arg) > 1 and not _LEADING_MINUS.match(arg):
            options.append(arg)
            if arg in takes_value and i + 1 < len(args):
                options.append(args[i + 1])
                i += 1
        else:
            positionals.append(arg)
        i += 1
    return positionals, options


def load_binder(directory: str, device: str = "auto") -> Any:
    """The binder saved in ``directory``, on ``device`` (tests replace this function with a fake)."""
    from mmbind.binder import Binder
    from mmbind.devices import resolve_device

    return Binder.from_pretrained(directory, device=resolve_device(device))


def _load_vectors(items: tuple[str, ...]) -> dict[str, Any]:
    import numpy as np

    vectors = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"{item!r}: expected NAME=FILE.npy", param_hint="--vec")
        try:
            vectors[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise click.BadParameter(f"{path}: cannot read a .npy vector ({error})", param_hint="--vec") from None
    return vectors


def _modality(name: str) -> Modality:
    from mmbind import get_modality

    try:
        return get_modality(name)
    except KeyError as error:
        raise click.BadParameter(str(error), param_hint="--modality") from None


def _expand_inputs(inputs: tuple[str, ...], modality: str) -> list[str]:
    """Content (strings the modality reads as content, e.g. text phrases), files, directories
    (walked, filtered by the modality's extensions if it has any) and @lists."""
    spec = _modality(modality)
    extensions = tuple(e.lower() for e in spec.extensions)
    out: list[str] = []
    for item in inputs:
        if item.startswith("@"):
            listing = Path(item[1:])
            if not listing.is_file():
                raise click.BadParameter(f"{listing}: list file not found", param_hint="INPUTS")
            out.extend(line.strip() for line in listing.read_text().splitlines() if line.strip())
        elif spec.input_file(item) is None:
            out.append(item)
        elif Path(item).is_dir():
            files = sorted(p for p in Path(item).rglob("*") if p.is_file())
            out.extend(str(p) for p in files if not extensions or p.suffix.lower() in extensions)
        elif Path(item).is_file():
            out.append(item)
        else:
            raise click.BadParameter(f"{item}: no such file or directory", param_hint="INPUTS")
    return out


def _dataset_items(name: str, split: str, modality: str) -> list[EmbedItem]:
    from mmbind import load_dataset
    from mmbind.store import dataset_items

    data = load_dataset(name)
    if split not in data.splits:
        raise click.BadParameter(f"dataset {name!r} has splits {', '.join(data.splits)}, not {split!r}",
                                 param_hint="--split")
    if modality not in data.splits[split]:
        raise click.BadParameter(f"dataset {name!r} split {split!r} has modalities "
                                 f"{', '.join(data.splits[split])}, not {modality!r}", param_hint="--modality")
    return dataset_items(data, split, modality, f"{name}/{split}")


def _pick_collection(store: Any, collection: str | None) -> str:
    if collection:
        return collection
    names = store.collections()
    if len(names) == 1:
        return names[0]
    raise click.UsageError(f"{store.path} has collections {', '.join(names) or '(none)'}: choose one with --collection")


def _print_results(results: list[list[dict]], as_json: bool, queries: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(results if len(results) > 1 else results[0], indent=2))
        return
    for query, hits in zip(queries, results):
        if len(results) > 1:
            click.echo(f"# {query}")
        for rank, hit in enumerate(hits, 1):
            label = "" if hit["label"] is None else f"  label={hit['label']}"
            click.echo(f"{rank:3d}  {hit['score']:.4f}  {hit['id']}{label}{_content(hit)}")


def _content(hit: dict) -> str:
    """A hit's stored content (a phrase), when it is not already its id."""
    from mmbind.store.ingest import CONTENT_KEY

    content = (hit.get("meta") or {}).get(CONTENT_KEY)
    if not isinstance(content, str) or content == hit["id"]:
        return ""
    content = " ".join(content.split())
    return f"  {json.dumps(content[:77] + '...' if len(content) > 80 else content, ensure_ascii=False)}"


def _run_search(store_path: str, expressions: list[str], collection: str | None, binder_dir: str | None,
                top_k: int, index: str | None, memory_budget: str | None, vec: tuple[str, ...],
                device: str = "auto") -> list[list[dict]]:
    from mmbind.search.expression import ArithEvalError, ArithSyntaxError
    from mmbind.search.faiss_index import StaleIndexError
    from mmbind.store import EmbeddingStore, StoreError

    budget = parse_size(memory_budget) if memory_budget else None
    vectors = _load_vectors(vec)
    try:
        with EmbeddingStore(store_path, mode="r") as store:
            name = _pick_collection(store, collection)
            binder = load_binder(binder_dir, device) if binder_dir else None
            return store.search(expressions, name, top_k=top_k, memory_budget=budget,
                                index=None if index == "brute" else index, binder=binder, vectors=vectors)
    except (ArithSyntaxError, ArithEvalError, StoreError, StaleIndexError, FileNotFoundError, ImportError,
            ValueError, KeyError) as error:
        raise click.ClickException(str(error).strip("'\"") if isinstance(error, KeyError) else str(error)) from None


_search_options = [
    click.option("--collection", "-c", help="Collection to search (default: the only one)."),
    click.option("--binder", "binder_dir", type=click.Path(file_okay=False),
                 help="Binder directory, needed to encode file or text operands."),
    click.option("--top-k", "-k", default=10, show_default=True, type=click.IntRange(min=1)),
    click.option("--index", type=click.Choice(["brute", "faiss"]), default="brute", show_default=True,
                 help="Exact streaming brute force, or the collection's saved FAISS index."),
    click.option("--memory-budget", help="Working memory of a brute-force search, e.g. 256MiB (default 256MiB)."),
    click.option("--vec", multiple=True, metavar="NAME=FILE.npy", help="A named vector for vec:NAME operands."),
    click.option("--json", "as_json", is_flag=True, help="Print the results as JSON."),
    device_option(help="Where the binder encodes file or text operands: auto, cpu, cuda, cuda:N or mps."),
]


def _with_search_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_search_options):
        function = option(function)
    return function


@click.command(cls=_LeadingMinus)
@click.argument("store", type=click.Path(dir_okay=False))
@click.argument("inputs", nargs=-1)
@click.option("--binder", "binder_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Binder directory written by save_pretrained (a run's model/ folder).")
@click.option("--modality", "-m", required=True, help="Modality of the inputs (audio, image, text, ...).")
@click.option("--collection", "-c", help="Collection name (default: the modality).")
@click.option("--dataset", help="Embed a registered dataset's split instead of INPUTS.")
@click.option("--split", default="test", show_default=True, help="Dataset split (with --dataset).")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1),
              help="Inputs per batch; each batch is one crash-safe commit.")
@click.option("--skip-bad", is_flag=True, help="Leave out inputs that cannot be read (listed at the end) "
              "instead of stopping at the first.")
@click.option("--replace", is_flag=True, help="An input whose id is stored with other content (an edited "
              "file) overwrites that entry's vector; without it, such inputs are left out with a warning.")
@device_option()
def embed(store: str, inputs: tuple[str, ...], binder_dir: str, modality: str, collection: str | None,
          dataset: str | None, split: str, batch_size: int, skip_bad: bool, replace: bool, device: str) -> None:
    """Embed INPUTS (files, directories, @list.txt, or the content itself where the modality
    takes strings, e.g. phrases) into STORE.

    Inputs already in the collection (same content hash) are skipped before encoding, so
    re-running after an interruption resumes where it stopped.
    """
    from mmbind.store import AddResult, EmbeddingStore, embed_inputs

    if dataset and inputs:
        raise click.UsageError("give either INPUTS or --dataset, not both")
    items = _dataset_items(dataset, split, modality) if dataset else _expand_inputs(inputs, modality)
    if not items:
        raise click.UsageError("nothing to embed: give INPUTS or --dataset")
    binder = load_binder(binder_dir, device)
    name = collection or modality

    def progress(result: AddResult, count: int) -> None:
        click.echo(f"committed {count} (+{result.added}, skipped {result.skipped})", err=True)

    new_store = not Path(store).exists()
    try:
        with EmbeddingStore(store) as handle:
            total = embed_inputs(handle, binder, name, items, modality=modality, batch_size=batch_size,
                                 on_commit=progress, skip_bad=skip_bad, replace=replace)
            count = handle.count(name)
    except FileNotFoundError as error:  # an input listed in an @list that is not there
        if new_store:
            _remove_if_empty(Path(store))
        raise click.ClickException(str(error)) from None
    except BaseException:
        if new_store:
            _remove_if_empty(Path(store))
        raise
    _report_left_out(total)
    if total.replaced:
        _drop_stale_index(store, name)
    summary = {"collection": name, "added": total.added, "skipped": total.skipped, "count": count}
    summary.update({key: value for key, value in (("replaced", total.replaced), ("changed", len(total.changed)),
                                                    ("bad", len(total.bad))) if value})
    click.echo(json.dumps(summary))


def _report_left_out(total: Any) -> None:
    if total.changed:
        shown = ", ".join(total.changed[:5]) + (f", ... ({len(total.changed)} in all)" if len(total.changed) > 5 else "")
        click.echo(f"warning: {len(total.changed)} input(s) left out: their id is already stored with other "
                   f"content (an edited file?): {shown}. The stored entries keep their old vectors; run again "
                   "with --replace to overwrite them.", err=True)
    if total.bad:
        click.echo(f"skipped {len(total.bad)} bad input(s):", err=True)
        for item, reason in total.bad:
            click.echo(f"  {item}: {reason}", err=True)


def _drop_stale_index(store: str, collection: str) -> None:
    """After --replace: a saved FAISS index still holds the old vectors (its entry count did not
    change, so it would not look stale): remove it."""
    from mmbind.search.faiss_index import index_paths

    removed = [p for p in index_paths(store, collection) if p.is_file()]
    for path in removed:
        path.unlink()
    if removed:
        click.echo(f"removed the FAISS index of {collection!r} ({removed[0]}): it held the replaced vectors; "
                   f"rebuild it with `mmbind index {store} {collection}`", err=True)


def _remove_if_empty(path: Path) -> None:
    """A store this command created and a failure left without a collection is removed."""
    from mmbind.store import EmbeddingStore, StoreError

    try:
        with EmbeddingStore(path, mode="r") as handle:
            empty = not handle.collections()
    except (StoreError, OSError):
        return
    if empty:
        path.unlink(missing_ok=True)


@click.command(cls=_LeadingMinus)
@click.argument("store", type=click.Path(exists=True, dir_okay=False))
@click.argument("queries", nargs=-1, required=True)
@_with_search_options
def search(store: str, queries: tuple[str, ...], collection: str | None, binder_dir: str | None, top_k: int,
           index: str, memory_budget: str | None, vec: tuple[str, ...], as_json: bool, device: str) -> None:
    """Top-k entries for each QUERY: id:COLLECTION/ID, text:"...", MODALITY:FILE, vec:NAME
    or any arithmetic expression (see `mmbind arith`)."""
    results = _run_search(store, list(queries), collection, binder_dir, top_k, index, memory_budget, vec, device)
    _print_results(results, as_json, list(queries))



@click.command(cls=_LeadingMinus)
@click.argument("store", type=click.Path(exists=True, dir_okay=False))
@click.argument("expression")
@_with_search_options
def arith(store: str, expression: str, collection: str | None, binder_dir: str | None, top_k: int,
          index: str, memory_budget: str | None, vec: tuple[str, ...], as_json: bool, device: str) -> None:
    """Search with a weighted sum of embeddings, e.g. '0.5*image:dog.png + 0.5*audio:rain.wav'.

    Operands: MODALITY:PATH, text:"a phrase", id:COLLECTION/ID (or /#ROW), vec:NAME;
    weights with * and /, + and -, unary minus, parentheses. Each operand is l2-normalised,
    and so is the result. Grammar: docs/arithmetic.md.
    """
    from mmbind.search.expression import ArithSyntaxError, format_terms, linear_terms, parse

    try:
        terms = linear_terms(parse(expression))
    except ArithSyntaxError as error:
        raise click.ClickException(str(error)) from None
    if not as_json:
        click.echo(f"= {format_terms(terms)}", err=True)
    results = _run_search(store, [expression], collection, binder_dir, top_k, index, memory_budget, vec, device)
    _print_results(results, as_json, [expression])



@click.command()
@click.argument("store", type=click.Path(exists=True, dir_okay=False))
@click.argument("collection")
@click.option("--kind", type=click.Choice(["flat", "ivf", "hnsw"]), default="flat", show_default=True)
@click.option("--nlist", type=click.IntRange(min=1), help="IVF lists (default about 4*sqrt(N)).")
@click.option("--hnsw-m", default=32, show_default=True, type=click.IntRange(min=2), help="HNSW links per node.")
def index(store: str, collection: str, kind: str, nlist: int | None, hnsw_m: int) -> None:
    """Build a FAISS index of COLLECTION beside STORE (needs faiss-cpu)."""
    from mmbind.search.faiss_index import build_index, index_paths
    from mmbind.store import EmbeddingStore, StoreError

    try:
        with EmbeddingStore(store, mode="r") as handle:
            path = build_index(handle, collection, kind, nlist=nlist, hnsw_m=hnsw_m)
            count = handle.count(collection)
    except (StoreError, ImportError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(json.dumps({"index": str(path), "sidecar": str(index_paths(store, collection)[1]),
                           "kind": kind, "count": count}))



def register(cli: click.Group) -> None:
    """Add ``embed``, ``search``, ``arith`` and ``index`` to the CLI."""
    for command in (embed, search, arith, index):
        cli.add_command(command)
