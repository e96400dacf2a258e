"""Sharded embedding: one store file per rank, joined into one store of virtual datasets."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmbind.store import EmbeddingStore, StoreError
from mmbind.store.shard import is_joined, join_shards, shard_path, shard_range

TESTS = Path(__file__).parent


def unit(rng, n, dim=8):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def write_shard(path, vectors, prefix, fingerprint="fp", dim=8):
    with EmbeddingStore(path) as store:
        store.create_collection("c", modality="image", dim=dim, fingerprint=fingerprint)
        if len(vectors):
            store.add("c", vectors, fingerprint=fingerprint, ids=[f"{prefix}{i}" for i in range(len(vectors))],
                      labels=[i % 3 for i in range(len(vectors))], metas=[{"i": i} for i in range(len(vectors))])


def test_shard_ranges_cover_the_inputs_in_order():
    for n in (0, 1, 7, 100):
        for world in (1, 2, 3, 8):
            ranges = [shard_range(n, r, world) for r in range(world)]
            assert ranges[0][0] == 0 and ranges[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_join_reads_as_one_store_from_anywhere(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    store = tmp_path / "run" / "embeddings.h5"
    parts = [unit(rng, 5), unit(rng, 0), unit(rng, 7)]  # an empty shard too
    for rank, vectors in enumerate(parts):
        write_shard(shard_path(store, rank, 3), vectors, f"r{rank}-")
    join_shards(store, [shard_path(store, r, 3) for r in range(3)])
    assert is_joined(store)
    moved = tmp_path / "moved"
    (tmp_path / "run").rename(moved)  # source paths are relative: the folder can move
    monkeypatch.chdir("/")
    with EmbeddingStore(moved / "embeddings.h5", mode="r") as joined:
        assert joined.collections() == ["c"] and joined.count("c") == 12
        np.testing.assert_allclose(joined.vectors("c"), np.concatenate(parts), rtol=1e-6)
        rows = joined.entries("c", [0, 4, 5, 11])
        assert [r["id"] for r in rows] == ["r0-0", "r0-4", "r2-0", "r2-6"]
        assert [r["meta"]["i"] for r in rows] == [0, 4, 0, 6] and rows[3]["label"] == "0"
        assert joined.find_ids("c", ["r2-3"]) == {"r2-3": 8}
        assert joined.has_hashes("c", [rows[2]["content_hash"], "0" * 64]) == [True, False]


def test_join_refuses_shards_from_different_binders(tmp_path):
    rng = np.random.default_rng(1)
    store = tmp_path / "embeddings.h5"
    write_shard(shard_path(store, 0, 2), unit(rng, 3), "a", fingerprint="binder-a")
    write_shard(shard_path(store, 1, 2), unit(rng, 3), "b", fingerprint="binder-b")
    with pytest.raises(StoreError, match="fingerprint is 'binder-a' in .*rank-00000.* but 'binder-b'"):
        join_shards(store, [shard_path(store, r, 2) for r in range(2)])
    assert not store.exists()
    with pytest.raises(StoreError, match="shard files missing"):
        join_shards(store, [shard_path(store, r, 3) for r in range(3)])


@pytest.mark.distributed
def test_embed_sharded_under_torchrun_matches_one_process(tmp_path):
    import shard_worker
    from mmbind.plugin import manager as plugins

    worker = str(TESTS / "shard_worker.py")
    store = tmp_path / "embeddings.h5"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", worker, str(store)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-5000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary == {"added": 100, "skipped": 0, "count": 100, "world": 2}
    assert sorted(p.name for p in store.with_name("embeddings.h5.shards").glob("*.h5")) == [
        "rank-00000-of-00002.h5", "rank-00001-of-00002.h5"]

    plugins.pm.register(shard_worker.toy_plugin, name="toy")
    plugins.reset()
    try:
        items = shard_worker.items()
        expected = shard_worker.toy_binder().encode([x["input"] for x in items], "toy-b")
    finally:
        plugins.pm.unregister(name="toy")
        plugins.reset()
    with EmbeddingStore(store, mode="r") as joined:
        assert [e["id"] for e in joined.entries("toy-b", list(range(100)))] == [x["id"] for x in items]
        np.testing.assert_allclose(joined.vectors("toy-b"), expected, rtol=1e-5, atol=1e-6)

    again = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ})
    assert again.returncode == 0, again.stderr[-5000:]
    assert json.loads(again.stdout.strip().splitlines()[-1])["skipped"] == 100  # a re-run resumes
