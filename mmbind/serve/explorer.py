"""The explorer's model, with no HTTP in it: a store opened for reading, the binder that made it,
the 2-D map of every collection, queries in the arithmetic language, item previews and dropped
files. `mmbind.serve.app` puts it on the web."""
from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmbind.search.expression import ArithSyntaxError, evaluate_expression, format_terms, linear_terms, parse
from mmbind.search.query import QueryResolver, attach_entries
from mmbind.search.topk import semantic_search, topk
from mmbind.serve.layout import MAP_NAME, compute_layout, place
from mmbind.serve.preview import Preview, describe
from mmbind.serve.sources import Sources
from mmbind.store.maps import load_map, save_map
from mmbind.store.store import EmbeddingStore, StoreError

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 20 * 2**20  # bytes
MAX_TOP_K = 100
IN_MEMORY_BYTES = 512 * 2**20  # a collection up to this size is searched in memory
NO_LABEL = "(no label)"
_UPLOADS_KEPT = 64  # dropped files' vectors kept in memory for vec: operands
_PREVIEWS_KEPT = 512
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")


class QueryError(ValueError):
    """A query, item or file the explorer cannot use; ``position`` is the 0-based column of a
    syntax error in ``expression`` (None for other errors). The page shows the message."""

    def __init__(self, message: str, expression: str | None = None, position: int | None = None):
        super().__init__(message)
        self.expression = expression
        self.position = position

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": str(self)}
        if self.position is not None:
            out.update(expression=self.expression, position=self.position, column=self.position + 1)
        return out


@dataclass
class Collection:
    """One collection as the map shows it: its rows are points offset .. offset+count-1."""

    name: str
    modality: str
    fingerprint: str
    count: int
    offset: int
    labels: np.ndarray  # uint16 index into Explorer.labels, per row
    paths: set[str]


class Explorer:
    """Everything the page asks for. Thread-safe: one lock around the store and the binder."""

    def __init__(self, store_path: str | Path, binder: Any = None, *, sources: Sources | None = None,
                 allow_embed: bool = False, upload_limit: int = DEFAULT_UPLOAD_LIMIT,
                 map_method: str = "auto", remap: bool = False):
        self.store_path = Path(store_path)
        self.binder = binder
        self.sources = sources or Sources()
        self.allow_embed = allow_embed
        self.upload_limit = upload_limit
        self.map_method = map_method
        self.version = 0  # bumped whenever the map's points change
        self._lock = threading.RLock()
        self._store = EmbeddingStore(self.store_path, mode="r")
        self._uploads: OrderedDict[str, np.ndarray] = OrderedDict()
        self._previews: OrderedDict[tuple[str, int], Preview | None] = OrderedDict()
        self._kinds: dict[str, str | None] = {}
        self._vectors: dict[str, np.ndarray] = {}  # searched collections, in memory
        self._resolver: QueryResolver | None = None
        self._payload: bytes | None = None
        self.labels: list[str] = []
        self.collections: dict[str, Collection] = {}
        self.positions: dict[str, np.ndarray] = {}
        self.map_info: dict[str, Any] = {}
        with self._lock:
            self._load_table()
            self._load_map(remap)

    def warm_up(self) -> None:
        """Embed one phrase, so that the first query does not wait for the text model to load."""
        language = self.language_modality()
        if language is not None:
            with self._lock:
                self.binder.encode(["warm up"], modality=language)

    def close(self) -> None:
        """Close the store."""
        with self._lock:
            self._store.close()

    def __enter__(self) -> "Explorer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- the table of points -------------------------------------------------------------------
    def _load_table(self) -> None:
        label_index = {label: i for i, label in enumerate(self.labels)}
        offset = 0
        collections = {}
        for name in self._store.collections():
            info = self._store.info(name)
            labels = self._store.column(name, "labels")  # columns, not entries: no JSON decoded
            codes = np.empty(len(labels), dtype=np.uint16)
            for i, label in enumerate(labels):
                label = label or NO_LABEL
                if label not in label_index:
                    label_index[label] = len(self.labels)
                    self.labels.append(label)
                codes[i] = label_index[label]
            paths = set(self._store.column(name, "paths")) - {""}
            collections[name] = Collection(name, info.modality, info.fingerprint, len(labels), offset, codes, paths)
            offset += len(labels)
        if len(self.labels) > 65535:
            raise QueryError(f"{self.store_path}: more than 65535 distinct labels; the map colours by at most that many")
        self.collections = collections
        self._vectors = {}
        self._payload = None

    @property
    def total(self) -> int:
        return sum(c.count for c in self.collections.values())

    def _sync(self) -> None:
        """See entries another process appended since the last look (and place them on the map)."""
        self._store.refresh()
        names = self._store.collections()
        if names != list(self.collections) or any(self._store.count(n) != self.collections[n].count for n in names):
            log.info("the store changed: reloading its entries")
            self._load_table()
            self._load_map(remap=False)

    # --- the map -------------------------------------------------------------------------------
    def _load_map(self, remap: bool) -> None:
        saved = None if remap else load_map(self._store, MAP_NAME)
        usable = saved is not None and all(
            saved.fingerprints.get(c.name, c.fingerprint) == c.fingerprint and len(saved.positions.get(c.name, ())) <= c.count
            for c in self.collections.values())
        placed = sum(len(saved.positions.get(c, ())) for c in self.collections) if usable else 0
        if not usable or placed < self.total / 2:
            self._compute_map()
            return
        positions = {}
        missing = []
        for c in self.collections.values():
            xy = saved.positions.get(c.name, np.zeros((0, 2), np.float32))
            positions[c.name] = xy
            if len(xy) < c.count:
                missing.append((c.name, len(xy)))
        if missing:
            positions = self._place_rows(positions, missing)
        self.positions = positions
        self.map_info = {"method": saved.method, "created": saved.created, "params": saved.params,
                         "placed": sum(self.collections[n].count - start for n, start in missing)}
        self.version += 1
        self._payload = None

    def _compute_map(self) -> None:
        names = list(self.collections)
        vectors = np.concatenate([self._store.vectors(n) for n in names]) if names else np.zeros((0, 2), np.float32)
        xy, method, params = compute_layout(vectors, self.map_method) if len(vectors) else (vectors, "pca", {})
        positions = {n: xy[c.offset:c.offset + c.count] for n, c in self.collections.items()}
        self.positions = positions
        self.map_info = {"method": method, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "params": params, "placed": 0}
        self.version += 1
        self._payload = None
        self._with_writer(lambda store: save_map(store, MAP_NAME, positions, method=method, params=params),
                          "save the map")

    def _place_rows(self, positions: dict[str, np.ndarray], missing: list[tuple[str, int]]) -> dict[str, np.ndarray]:
        """Rows the saved map lacks go to the similarity-weighted mean of their 10 nearest mapped points."""
        mapped = [n for n, xy in positions.items() if len(xy)]
        corpus = np.concatenate([self._store.vectors(n, slice(0, len(positions[n]))) for n in mapped])
        corpus_xy = np.concatenate([positions[n] for n in mapped])
        out = dict(positions)
        for name, start in missing:
            new = self._store.vectors(name, slice(start, self.collections[name].count))
            hits = semantic_search(new, corpus, top_k=10)
            extra = np.array([place(corpus_xy[[h["corpus_id"] for h in row]], [h["score"] for h in row])
                              for row in hits], dtype=np.float32).reshape(-1, 2)
            out[name] = np.concatenate([positions[name], extra])
        log.info("placed %d entries added after the map was computed", sum(len(out[n]) - s for n, s in missing))
        return out

    def _with_writer(self, action: Any, what: str) -> Any:
        """Run ``action(store)`` with the store open for writing (HDF5 allows one process either a
        reader or the writer, so the reader closes meanwhile); False if another writer holds it."""
        self._store.close()
        try:
            with EmbeddingStore(self.store_path) as writer:
                return action(writer)
        except (StoreError, OSError) as error:  # another writer holds the lock, or a read-only file
            log.warning("could not %s: %s", what, error)
            return False
        finally:
            self._store = EmbeddingStore(self.store_path, mode="r")

    # --- what the page loads -------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        with self._lock:
            self._sync()
            modalities = []
            if self.binder is not None:
                import mmbind

                for name in self.binder.modalities:
                    spec = mmbind.get_modality(name)
                    modalities.append({"name": name, "extensions": list(spec.extensions), "language": spec.language})
            return {
                "store": str(self.store_path),
                "version": self.version,
                "total": self.total,
                "collections": [{"name": c.name, "modality": c.modality, "count": c.count, "offset": c.offset}
                                for c in self.collections.values()],
                "labels": self.labels,
                "map": self.map_info,
                "modalities": modalities,
                "anchor": getattr(self.binder, "anchor_modality", None),
                "allow_embed": self.allow_embed,
                "upload_limit": self.upload_limit,
            }

    def map_payload(self) -> bytes:
        """The points as bytes: float32 x, y per point (collection order), then uint16 label codes."""
        with self._lock:
            self._sync()
            if self._payload is None:
                names = list(self.collections)
                xy = (np.concatenate([self.positions[n] for n in names]) if names else np.zeros((0, 2), np.float32))
                codes = (np.concatenate([self.collections[n].labels for n in names]) if names
                         else np.zeros(0, np.uint16))
                padding = b"\0" * ((-codes.nbytes) % 4)
                self._payload = xy.astype("<f4").tobytes() + codes.astype("<u2").tobytes() + padding
            return self._payload

    # --- queries -------------------------------------------------------------------------------
    def language_modality(self) -> str | None:
        import mmbind

        for name in getattr(self.binder, "modalities", []):
            if mmbind.get_modality(name).language:
                return name
        return None

    def expression(self, query: str) -> str:
        """The query as an expression: itself if it parses, else plain text (no ':' in it) as an
        operand of the binder's language modality; a malformed expression raises QueryError."""
        query = query.strip()
        if not query:
            raise QueryError("type a query: an expression such as id:image/#3 - text:\"red\", or plain text")
        try:
            parse(query)
            return query
        except ArithSyntaxError as error:
            language = self.language_modality()
            if ":" in query or language is None:
                raise QueryError(str(error), query, error.position) from None
        escaped = query.replace("\\", "\\\\").replace('"', '\\"')
        return f'{language}:"{escaped}"'

    def _check_operands(self, expression: str) -> str:
        """Refuse file operands naming anything but a source file recorded in the store: a page
        must not make the server read the files it likes (drop a file on the page instead)."""
        import mmbind

        terms = linear_terms(parse(expression))
        recorded = set().union(*(c.paths for c in self.collections.values())) if self.collections else set()
        for _, operand in terms:
            if operand.kind in ("id", "vec"):
                continue
            try:
                spec = mmbind.get_modality(operand.kind)
            except KeyError:
                continue  # the resolver reports an unknown modality
            if spec.input_file(operand.ref) is not None and operand.ref not in recorded:
                raise QueryError(f"{operand} (column {operand.pos + 1}): the explorer reads only the source files "
                                 "recorded in the store; drop the file on the page to query with it",
                                 expression, operand.pos)
        return format_terms(terms)

    def search(self, query: str, target: str, top_k: int = 10) -> dict[str, Any]:
        """Ranked entries of ``target`` for a query, with the query's place on the map."""
        started = time.perf_counter()
        if not 1 <= top_k <= MAX_TOP_K:
            raise QueryError(f"k={top_k}: expected 1..{MAX_TOP_K}")
        with self._lock:
            self._sync()
            if target not in self.collections:
                raise QueryError(f"no collection {target!r} (collections: {', '.join(self.collections) or 'none'})")
            expression = self.expression(query)
            terms = self._check_operands(expression)
            try:
                hits = self._search_vector(self._query_vector(expression, target), target, top_k)
            except (ValueError, KeyError, FileNotFoundError) as error:  # StoreError, ArithEvalError, InputError
                message = str(error).strip("'\"") if isinstance(error, KeyError) else str(error)
                raise QueryError(message) from None
            xy = self.positions[target]
            rows = [h["corpus_id"] for h in hits]
            position = place(xy[rows], [h["score"] for h in hits]) if hits else None
            results = [self._summary(target, h) for h in hits]
        return {
            "query": query, "expression": expression, "terms": terms, "target": target,
            "results": results, "version": self.version,
            "position": None if position is None else [float(position[0]), float(position[1])],
            "elapsed_ms": round(1000 * (time.perf_counter() - started), 1),
        }

    def _query_vector(self, expression: str, target: str) -> np.ndarray:
        """The expression's unit vector; operands from another binder's space are refused, as
        ``EmbeddingStore.search`` does. One resolver is kept, so the binder's fingerprint (a hash
        of all its weights) is computed once, not per query."""
        if self._resolver is None or self._resolver.store is not self._store:
            self._resolver = QueryResolver(self._store, self.binder)
        self._resolver.vectors = self._uploads
        self._resolver.fingerprints.clear()
        vector = evaluate_expression(expression, self._resolver)
        expected = self.collections[target].fingerprint
        for operand, fingerprint in self._resolver.fingerprints.items():
            if fingerprint != expected:
                raise QueryError(f"query operand {operand} comes from binder {fingerprint}, but collection "
                                 f"{target!r} was made by binder {expected}: the spaces differ")
        return vector

    def _search_vector(self, vector: np.ndarray, target: str, top_k: int) -> list[dict[str, Any]]:
        """Exact top-k by cosine over the collection's vectors, kept in memory up to
        IN_MEMORY_BYTES (a matrix product: far quicker than streaming the file per query); larger
        collections are searched by the store, streamed from the file."""
        count = self.collections[target].count
        if count * vector.size * 4 > IN_MEMORY_BYTES:
            return self._store.search(vector, target, top_k=top_k)[0]
        if target not in self._vectors:
            self._vectors[target] = self._store.vectors(target)
        scores, rows = topk(vector[None], self._vectors[target], top_k)
        return attach_entries(self._store, target, scores, rows)[0]

    def _summary(self, collection: str, hit: dict[str, Any]) -> dict[str, Any]:
        c = self.collections[collection]
        out = {"collection": collection, "row": hit["corpus_id"], "index": c.offset + hit["corpus_id"],
               "id": hit["id"], "label": hit["label"], "score": round(hit["score"], 5),
               "kind": self._kind(collection)}
        if out["kind"] == "words":
            preview = self._preview(collection, hit["corpus_id"], hit)
            out["words"] = preview.text if preview else None
        return out

    # --- items ---------------------------------------------------------------------------------
    def _entry(self, collection: str, row: int) -> dict[str, Any]:
        if collection not in self.collections:
            raise QueryError(f"no collection {collection!r}")
        if not 0 <= row < self.collections[collection].count:
            raise QueryError(f"collection {collection!r} has no row {row}")
        return self._store.entries(collection, [row])[0]

    def _preview(self, collection: str, row: int, entry: dict[str, Any] | None = None) -> Preview | None:
        key = (collection, row)
        if key in self._previews:
            self._previews.move_to_end(key)
            return self._previews[key]
        entry = entry or self._entry(collection, row)
        raw = self.sources.raw(self.collections[collection].modality, entry)
        preview = None if raw is None else describe(raw)
        self._previews[key] = preview
        if len(self._previews) > _PREVIEWS_KEPT:
            self._previews.popitem(last=False)
        return preview

    def _kind(self, collection: str) -> str | None:
        """What a collection's items look like (all entries of a collection share a modality)."""
        if collection not in self._kinds:
            try:
                preview = self._preview(collection, 0) if self.collections[collection].count else None
            except Exception as error:  # a missing source file: show the entries without previews
                log.warning("no previews for collection %r: %s", collection, error)
                preview = None
            self._kinds[collection] = None if preview is None else preview.kind
        return self._kinds[collection]

    def item(self, collection: str, row: int) -> dict[str, Any]:
        """An entry with what the page needs to show it."""
        with self._lock:
            entry = self._entry(collection, row)
            c = self.collections[collection]
            out = {"collection": collection, "row": row, "index": c.offset + row, "modality": c.modality,
                   "id": entry["id"], "label": entry["label"], "path": entry["path"], "meta": entry["meta"],
                   "position": [float(v) for v in self.positions[collection][row]]}
            try:
                preview = self._preview(collection, row, entry)
            except Exception as error:
                out["kind"], out["preview_error"] = None, f"cannot read this item: {error}"
                return out
            out.update(preview.summary() if preview else {"kind": None})
            return out

    def media(self, collection: str, row: int) -> tuple[bytes, str]:
        """The item as PNG or WAV bytes (QueryError when it has none)."""
        with self._lock:
            try:
                preview = self._preview(collection, row)
            except QueryError:
                raise
            except Exception as error:
                raise QueryError(f"cannot read {collection}/#{row}: {error}") from None
            media = preview.media() if preview else None
            if media is None:
                raise QueryError(f"{collection}/#{row} has no image or sound to show")
            return media

    def source_file(self, path: str) -> Path | None:
        """The file at ``path`` if, and only if, the store records it as an entry's source."""
        with self._lock:
            if any(path in c.paths for c in self.collections.values()) and Path(path).is_file():
                return Path(path)
            return None

    # --- dropped files -------------------------------------------------------------------------
    def upload(self, data: bytes, filename: str, modality: str | None = None, store: bool = False) -> dict[str, Any]:
        """Embed a dropped file by its modality's tower; returns the operand that stands for it
        (``vec:upload-...``, or ``id:uploads-<modality>/#row`` once written to the store, which
        needs ``allow_embed``). Several modalities claiming the file: the anchor's if it is one,
        else the page is asked to choose (``choose`` lists them)."""
        import mmbind

        if self.binder is None:
            raise QueryError("the explorer was started without a binder: it cannot embed files")
        if len(data) > self.upload_limit:
            raise QueryError(f"{filename}: {len(data)} bytes is over the upload limit of {self.upload_limit} bytes")
        if store and not self.allow_embed:
            raise QueryError("writing dropped files into the store is off; start with --allow-embed to allow it")
        suffix = Path(filename).suffix.lower()
        if not _SUFFIX.match(suffix):
            raise QueryError(f"{filename}: expected a file name with an extension such as .png, .wav, .npy or .csv")
        modalities = list(self.binder.modalities)
        if modality:
            if modality not in modalities:
                raise QueryError(f"the binder has no {modality!r} modality; it has {', '.join(modalities)}")
            candidates = [modality]
        else:
            candidates = [m for m in modalities if suffix in mmbind.get_modality(m).extensions]
        if not candidates:
            known = sorted({e for m in modalities for e in mmbind.get_modality(m).extensions})
            raise QueryError(f"{filename}: no modality of this binder reads {suffix} files (it reads {', '.join(known)})")
        digest = hashlib.sha256(data).hexdigest()
        with tempfile.TemporaryDirectory(prefix="mmbind-upload-") as folder:
            path = Path(folder) / f"upload{suffix}"
            path.write_bytes(data)
            accepted, errors = [], []
            for name in candidates:
                try:
                    mmbind.get_modality(name).load(str(path))
                    accepted.append(name)
                except Exception as error:  # InputError, or a reader's own error on a broken file
                    errors.append(f"as {name}: {error}".replace(str(path), filename))
            if not accepted:
                raise QueryError(f"{filename}: cannot read it ({'; '.join(errors)})")
            anchor = getattr(self.binder, "anchor_modality", None)
            if len(accepted) > 1 and anchor not in accepted:
                return {"filename": filename, "choose": accepted}
            chosen = anchor if anchor in accepted and len(accepted) > 1 else accepted[0]
            with self._lock:
                if store:
                    operand = self._store_upload(path, filename, chosen, digest)
                else:
                    vector = np.asarray(self.binder.encode([str(path)], modality=chosen))[0]
                    token = f"upload-{digest[:12]}"
                    self._uploads[token] = vector
                    self._uploads.move_to_end(token)
                    while len(self._uploads) > _UPLOADS_KEPT:
                        self._uploads.popitem(last=False)
                    operand = f"vec:{token}"
        return {"filename": filename, "modality": chosen, "operand": operand, "stored": store,
                "candidates": accepted}

    def _store_upload(self, path: Path, filename: str, modality: str, digest: str) -> str:
        """Keep the file beside the store and embed it into collection ``uploads-<modality>``."""
        from mmbind.store.ingest import EmbedItem, embed_inputs

        folder = self.store_path.with_name(self.store_path.name + ".uploads")
        folder.mkdir(exist_ok=True)
        kept = folder / f"{digest[:16]}{path.suffix}"
        if not kept.exists():
            shutil.copyfile(path, kept)
        collection = f"uploads-{modality}"
        item = EmbedItem(str(kept), id=f"upload-{digest[:16]}", meta={"uploaded": filename})

        def embed(store: EmbeddingStore) -> int:
            embed_inputs(store, self.binder, collection, [item], modality=modality)
            return store.find_ids(collection, [item.id])[item.id]

        row = self._with_writer(embed, "write the dropped file into the store")
        if row is False:
            raise QueryError("another process is writing to the store; try again when it is done")
        self._sync()
        return f"id:{collection}/#{row}"


__all__ = ["Explorer", "QueryError", "Collection", "DEFAULT_UPLOAD_LIMIT", "MAX_TOP_K", "NO_LABEL"]
