"""The HDF5 embedding store (docs/store.md).

Parts: ``store`` (the ``EmbeddingStore`` facade), ``file`` (lock, SWMR open, copy-and-replace),
``recovery`` (a killed writer's superblock flags), ``schema`` (format and collection layout),
``codec`` (string columns), ``collection`` (one collection's rows: commit and reads),
``validate`` (the checks of an add), ``ingest`` (embedding inputs, resumably) and ``shard``
(sharded writing under torchrun).
"""
from mmbind.hashing import content_hash
from mmbind.store.errors import StoreError, StoreLockedError
from mmbind.store.ingest import EmbedItem, dataset_items, embed_inputs, embed_split
from mmbind.store.schema import SCHEMA_VERSION, STORE_FORMAT, CollectionInfo
from mmbind.store.store import AddResult, EmbeddingStore, EntryBatch

__all__ = [
    "EmbeddingStore", "CollectionInfo", "AddResult", "EntryBatch", "StoreError", "StoreLockedError",
    "content_hash", "SCHEMA_VERSION", "STORE_FORMAT", "EmbedItem", "embed_inputs", "dataset_items",
    "embed_split",
]
