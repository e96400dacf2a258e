"""A store collection in the TensorBoard embedding projector's format: ``tensors.tsv`` (one
vector per line, tab-separated), ``metadata.tsv`` (a header, then id, label, path and each meta
key per row) and ``projector_config.pbtxt`` naming both. Point ``tensorboard --logdir`` at the
folder, or load the two TSV files in projector.tensorflow.org. Rows are streamed in chunks, so
memory holds one chunk whatever the collection's size.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

TENSORS = "tensors.tsv"
METADATA = "metadata.tsv"
CONFIG = "projector_config.pbtxt"
FIXED_COLUMNS = ("id", "label", "path")
CHUNK_ROWS = 8192


def _cell(value: Any) -> str:
    # A tab or newline would split the TSV; the projector shows the text as it is otherwise.
    text = value if isinstance(value, str) else "" if value is None else json.dumps(value)
    return " ".join(text.split("\t")).replace("\r", " ").replace("\n", " ")


def _meta_keys(store: Any, collection: str, count: int) -> list[str]:
    keys: set[str] = set()
    for start in range(0, count, CHUNK_ROWS):
        for entry in store.entries(collection, np.arange(start, min(count, start + CHUNK_ROWS))):
            keys.update(entry["meta"])
    return sorted(keys - set(FIXED_COLUMNS))


def export_projector(store: Any, collection: str, out: str | Path) -> dict[str, Any]:
    """Write ``collection`` of an open EmbeddingStore to the folder ``out``; returns a summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    count = store.count(collection)
    keys = _meta_keys(store, collection, count)
    with open(out / TENSORS, "w", encoding="utf-8") as tensors, open(out / METADATA, "w", encoding="utf-8") as meta:
        meta.write("\t".join((*FIXED_COLUMNS, *keys)) + "\n")
        for first, block in store.iter_vectors(collection, CHUNK_ROWS):
            np.savetxt(tensors, block, fmt="%.8g", delimiter="\t")
            for entry in store.entries(collection, np.arange(first, first + len(block))):
                cells = [entry["id"], entry["label"], entry["path"], *(entry["meta"].get(k) for k in keys)]
                meta.write("\t".join(_cell(c) for c in cells) + "\n")
    (out / CONFIG).write_text(
        "embeddings {\n"
        f"  tensor_name: {json.dumps(collection)}\n"
        f"  tensor_path: {json.dumps(TENSORS)}\n"
        f"  metadata_path: {json.dumps(METADATA)}\n"
        "}\n", encoding="utf-8")
    return {"folder": str(out), "collection": collection, "rows": count, "dim": store.info(collection).dim,
            "metadata_columns": [*FIXED_COLUMNS, *keys]}
