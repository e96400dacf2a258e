"""The HDF5 embedding store (docs/store.md): the file, its collections, resumable ingestion and
sharded writing under torchrun (``mmbind.store.shard``)."""
from mmbind.store.ingest import EmbedItem, embed_inputs
from mmbind.store.store import (
    SCHEMA_VERSION, STORE_FORMAT, AddResult, CollectionInfo, EmbeddingStore, EntryBatch, StoreError,
    StoreLockedError, content_hash,
)

__all__ = [
    "EmbeddingStore", "CollectionInfo", "AddResult", "EntryBatch", "StoreError", "StoreLockedError",
    "content_hash", "SCHEMA_VERSION", "STORE_FORMAT", "EmbedItem", "embed_inputs",
]
