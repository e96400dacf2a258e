"""The recipe's embed stage: every modality of the embed split into the run's HDF5 store, one
collection per modality. Other splits go in with `mmbind embed --dataset ... --split ...`."""
from __future__ import annotations

from pathlib import Path

from mmbind.store.store import EmbeddingStore
from mmbind.store.ingest import EmbedItem, embed_inputs


def embed_split(binder, data, recipe) -> Path:
    """Embed and store; a rerun skips what the store already holds (content hashes)."""
    path = recipe.run_dir / recipe.embed.store
    split = recipe.embed.split
    fingerprint = binder.fingerprint()
    with EmbeddingStore(path) as store:
        for modality, samples in data.splits[split].items():
            if modality not in binder.modalities:
                continue
            is_file = modality != "text" and isinstance(samples.inputs[0], (str, Path))
            items = (EmbedItem(samples.inputs[i], id=f"{split}/{modality}/{i}",
                               label=data.class_names[label] if 0 <= label < len(data.class_names) else label,
                               path=str(samples.inputs[i]) if is_file else None,
                               meta={"key": samples.keys[i], **(samples.meta[i] if samples.meta else {})})
                     for i, label in enumerate(samples.labels))
            embed_inputs(store, binder, modality, items, modality=modality, batch_size=256,
                         fingerprint=fingerprint)
    return path
