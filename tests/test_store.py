"""The HDF5 embedding store: format, adding with dedup and refusals, reading, crash safety with
real SIGKILLed writer processes, and concurrent readers."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from store_fakes import FakeBinder, items, status_flags

from mmbind.store import (
    AddResult,
    EmbeddingStore,
    EntryBatch,
    StoreError,
    StoreLockedError,
    content_hash,
    embed_inputs,
)
from mmbind.store.recovery import clear_status_flags, lookup3

WRITER = Path(__file__).with_name("store_fakes.py")
DOCS = Path(__file__).parents[1] / "docs" / "store.md"


def unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def store(tmp_path):
    with EmbeddingStore(tmp_path / "s.h5") as s:
        s.create_collection("img", modality="image", dim=8, fingerprint="fp-a", tau=0.07)
        yield s


# --- basics ------------------------------------------------------------------------------------
def test_collection_records_its_attributes(store):
    info = store.info("img")
    assert (info.name, info.modality, info.dim, info.fingerprint, info.tau, info.schema_version, info.count) == (
        "img", "image", 8, "fp-a", 0.07, 1, 0)
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", info.created)
    assert store.collections() == ["img"] and "img" in store and "nope" not in store
    store.create_collection("txt", modality="text", dim=4, fingerprint="fp-a")
    assert store.info("txt").tau is None
    assert store.collections() == ["img", "txt"]


def test_add_read_back_all_columns(store):
    rng = np.random.default_rng(0)
    v = rng.standard_normal((5, 8)).astype(np.float32) * 3  # not unit: the store normalises
    result = store.add("img", v, fingerprint="fp-a", ids=[f"e{i}" for i in range(5)], labels=[3, None, "cat", 0, 1],
                       paths=["a.png", None, Path("c.png"), "é/ü.png", ""], metas=[{"k": 1}, None, {"s": "ü"}, {}, {"x": [1, 2]}])
    assert result == AddResult(5, 0)
    assert store.count("img") == 5
    np.testing.assert_allclose(store.vectors("img"), v / np.linalg.norm(v, axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(store.vectors("img", [4, 0, 4]), store.vectors("img")[[4, 0, 4]])
    rows = store.entries("img", [2, 0, 3, 1])
    assert [r["corpus_id"] for r in rows] == [2, 0, 3, 1]
    assert [r["id"] for r in rows] == ["e2", "e0", "e3", "e1"]
    assert [r["label"] for r in rows] == ["cat", "3", "0", None]
    assert [r["path"] for r in rows] == ["c.png", "a.png", "é/ü.png", None]
    assert [r["meta"] for r in rows] == [{"s": "ü"}, {"k": 1}, {}, {}]
    assert all(len(r["content_hash"]) == 64 for r in rows)
    # default ids are row numbers; default hash is the normalised vector's
    store.add("img", rng.standard_normal((2, 8)), fingerprint="fp-a")
    assert [e["id"] for e in store.entries("img", [5, 6])] == ["5", "6"]
    # one column of every row, as the entries give it ("" for none)
    assert store.column("img", "labels") == ["3", "", "cat", "0", "1", "", ""]
    assert store.column("img", "paths")[:5] == ["a.png", "", "c.png", "é/ü.png", ""]
    with pytest.raises(StoreError, match="no string column 'vectors'"):
        store.column("img", "vectors")


def test_duplicates_are_skipped_and_counted(store, tmp_path):
    rng = np.random.default_rng(1)
    v = unit(rng, 6, 8)
    hashes = [f"h{i}" for i in range(6)]
    assert store.add("img", v[:4], fingerprint="fp-a", hashes=hashes[:4]) == AddResult(4, 0)
    # two already stored, one repeated inside the batch
    assert store.add("img", v[2:6], fingerprint="fp-a", hashes=["h2", "h3", "h4", "h4"]) == AddResult(1, 3)
    assert store.add("img", v[:4], fingerprint="fp-a", hashes=hashes[:4]) == AddResult(0, 4)
    # the same vector twice without hashes: deduplicated on the vector itself
    assert store.add("img", np.stack([v[5], v[5] * 2]), fingerprint="fp-a") == AddResult(1, 1)
    assert store.count("img") == 6
    store.close()
    with EmbeddingStore(tmp_path / "s.h5") as again:  # the hash set survives reopening
        assert again.add("img", v[:2], fingerprint="fp-a", hashes=["h0", "new"]) == AddResult(1, 1)
        assert again.has_hashes("img", ["h0", "new", "h9"]) == [True, True, False]


def test_add_stream_commits_each_batch(store):
    rng = np.random.default_rng(2)
    seen = []
    batches = (EntryBatch(unit(rng, 3, 8), ids=[f"b{b}-{i}" for i in range(3)]) if b % 2 else
               {"vectors": unit(rng, 2, 8), "labels": [b, b]} for b in range(5))
    total = store.add_stream("img", batches, fingerprint="fp-a", on_commit=lambda r, n: seen.append((r.added, n)))
    assert total == AddResult(12, 0)
    assert seen == [(2, 2), (3, 5), (2, 7), (3, 10), (2, 12)]


@pytest.mark.parametrize("call, message", [
    (lambda s, v: s.add("img", v, fingerprint="fp-b"), "refusing vectors of binder fp-b"),
    (lambda s, v: s.add("img", v[:, :4], fingerprint="fp-a"), r"stores 8-d vectors; got an array of shape \(3, 4\)"),
    (lambda s, v: s.add("img", v[0], fingerprint="fp-a"), "expected \\(batch, 8\\)"),
    (lambda s, v: s.add("img", np.where(np.arange(8) == 2, np.nan, v), fingerprint="fp-a"), "vector 0 .* NaN or inf"),
    (lambda s, v: s.add("img", v * (np.arange(3) != 1)[:, None], fingerprint="fp-a"), "vector 1 .* all zeros"),
    (lambda s, v: s.add("img", v, fingerprint="fp-a", ids=["a"]), "ids: got 1 values for 3 vectors"),
    (lambda s, v: s.add("img", v, fingerprint="fp-a", metas=[{}, {"x": {1, 2}}, {}]), r"entry 1 .* not JSON-serialisable"),
    (lambda s, v: s.add("img", v, fingerprint="fp-a", metas=[{}, [1], {}]), "metadata must be a dict, got list"),
    (lambda s, v: s.add("img", v, fingerprint="fp-a", metas=[{}, {"x": float("nan")}, {}]), "not JSON-serialisable"),
    (lambda s, v: s.add("img", v, fingerprint="fp-a", hashes=["a", "b", "x" * 65]), "content hash"),
    (lambda s, v: s.add("nope", v, fingerprint="fp-a"), "no collection 'nope' \\(collections: img\\)"),
    (lambda s, v: s.create_collection("img", modality="image", dim=8, fingerprint="fp-a"), "already exists"),
    (lambda s, v: s.create_collection("img", modality="image", dim=16, fingerprint="fp-a", exist_ok=True),
     "exists with dim=8, not 16"),
    (lambda s, v: s.create_collection("img", modality="audio", dim=8, fingerprint="fp-a", exist_ok=True),
     "exists with modality='image'"),
    (lambda s, v: s.create_collection("a/b", modality="x", dim=2, fingerprint="f"), "collection name 'a/b'"),
    (lambda s, v: s.create_collection("ok", modality="x", dim=0, fingerprint="f"), "dim must be a positive integer"),
    (lambda s, v: s.create_collection("ok", modality="x", dim=2, fingerprint="f", tau=-1), "tau must be"),
])
def test_bad_adds_are_refused_with_clear_errors(store, call, message):
    v = unit(np.random.default_rng(3), 3, 8)
    with pytest.raises(StoreError, match=message):
        call(store, v)
    assert store.count("img") == 0  # nothing half-written is visible


def test_exist_ok_returns_the_matching_collection(store):
    info = store.create_collection("img", modality="image", dim=8, fingerprint="fp-a", exist_ok=True)
    assert info.name == "img" and info.dim == 8


def test_one_writer_at_a_time_and_readers_cannot_write(store, tmp_path):
    with pytest.raises(StoreLockedError, match="another process is appending"):
        EmbeddingStore(tmp_path / "s.h5")
    store.add("img", unit(np.random.default_rng(4), 2, 8), fingerprint="fp-a")
    store.close()
    with EmbeddingStore(tmp_path / "s.h5", mode="r") as reader:
        assert reader.count("img") == 2
        with pytest.raises(StoreError, match="opened read-only"):
            reader.add("img", unit(np.random.default_rng(4), 2, 8), fingerprint="fp-a")
    with EmbeddingStore(tmp_path / "s.h5") as writer:  # the lock was released on close
        assert writer.count("img") == 2


def test_opening_bad_files_names_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such embedding store"):
        EmbeddingStore(tmp_path / "missing.h5", mode="r")
    with h5py.File(tmp_path / "other.h5", "w", libver="latest") as f:
        f["x"] = 1
    with pytest.raises(StoreError, match="not an mmbind embedding store"):
        EmbeddingStore(tmp_path / "other.h5", mode="r")
    with pytest.raises(StoreError, match="not an mmbind embedding store"):
        EmbeddingStore(tmp_path / "other.h5")
    with h5py.File(tmp_path / "old-format.h5", "w") as f:  # libver earliest: no SWMR possible
        f["x"] = 1
    with pytest.raises(StoreError, match="cannot open for appending"):
        EmbeddingStore(tmp_path / "old-format.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(StoreError, match="cannot open as an HDF5 embedding store"):
        EmbeddingStore(tmp_path / "text.h5", mode="r")
    with pytest.raises(StoreError, match="no HDF5 superblock found"):
        EmbeddingStore(tmp_path / "text.h5")
    assert (tmp_path / "text.h5").read_text() == "not hdf5"  # refused without touching it


def test_ids_and_refs(store):
    rng = np.random.default_rng(5)
    store.add("img", unit(rng, 4, 8), fingerprint="fp-a", ids=["cat", "2", "dog", "cat"])
    assert store.find_ids("img", ["cat", "dog", "zebra"]) == {"cat": 0, "dog": 2}
    assert store.resolve_ref("img/dog") == ("img", 2)
    assert store.resolve_ref("img/cat") == ("img", 0)  # first match
    assert store.resolve_ref("img/2") == ("img", 1)  # an id "2" wins over row 2
    assert store.resolve_ref("img/#2") == ("img", 2)  # '#' always means a row
    assert store.resolve_ref("img/3") == ("img", 3)  # no id "3": the row
    for ref, message in [("img/zebra", "no entry with id 'zebra'"), ("img/#9", "row 9 is out of range"),
                         ("img", "expected collection/<id>"), ("nope/1", "no collection 'nope'"),
                         ("img/#x", "expected a row number")]:
        with pytest.raises(StoreError, match=message):
            store.resolve_ref(ref)
    with pytest.raises(StoreError, match="rows must be integers in 0..3"):
        store.vectors("img", [4])


def test_embed_inputs_resumes_without_reencoding(tmp_path):
    binder = FakeBinder(dim=12)
    wavs = []
    for i in range(5):
        wavs.append(tmp_path / f"clip{i}.wav")
        wavs[-1].write_bytes(bytes([i]) * 100)
    wavs.append(tmp_path / "copy.wav")
    wavs[-1].write_bytes(bytes([0]) * 100)  # same content as clip0: skipped
    with EmbeddingStore(tmp_path / "s.h5") as s:
        first = embed_inputs(s, binder, "audio", [str(w) for w in wavs[:3]], modality="audio", batch_size=2)
        assert first == AddResult(3, 0) and binder.encoded == 3
        again = embed_inputs(s, binder, "audio", [str(w) for w in wavs], modality="audio", batch_size=2)
        assert again == AddResult(2, 4)
        assert binder.encoded == 3 + 2  # only the new clips went through the encoder
        info = s.info("audio")
        assert (info.modality, info.dim, info.fingerprint, info.tau, info.count) == ("audio", 12, "fake-12-0", 0.05, 5)
        assert [e["path"] for e in s.entries("audio", [0, 4])] == [str(wavs[0]), str(wavs[4])]
        with pytest.raises(StoreError, match="holds audio embeddings, not text"):
            embed_inputs(s, binder, "audio", ["hi"], modality="text")
        (tmp_path / "new.wav").write_bytes(b"n")
        with pytest.raises(StoreError, match="refusing vectors of binder fake-12-1"):
            embed_inputs(s, FakeBinder(dim=12, seed=1), "audio", [str(tmp_path / "new.wav")], modality="audio")


def test_uncommitted_rows_are_ignored_then_truncated(store, tmp_path):
    rng = np.random.default_rng(6)
    store.add("img", unit(rng, 3, 8), fingerprint="fp-a", ids=["a", "b", "c"])
    store.close()
    # simulate a batch that was written but never committed
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        g = f["collections/img"]
        for key in ["embeddings", "content_hash", "ids_end", "labels_end", "paths_end", "meta_end"]:
            g[key].resize(g[key].shape[0] + 2, axis=0)
        g["ids_bytes"].resize(g["ids_bytes"].shape[0] + 10, axis=0)
    with EmbeddingStore(tmp_path / "s.h5", mode="r") as reader:
        assert reader.count("img") == 3
        assert reader.vectors("img").shape == (3, 8)
    with EmbeddingStore(tmp_path / "s.h5") as writer:
        g = writer.file["collections/img"]
        assert g["embeddings"].shape[0] == 3 and g["ids_end"].shape[0] == 3 and g["ids_bytes"].shape[0] == 3
        writer.add("img", unit(rng, 1, 8), fingerprint="fp-a", ids=["d"])
        assert [e["id"] for e in writer.entries("img", range(4))] == ["a", "b", "c", "d"]


def test_the_documented_h5py_snippet_reads_the_store(store, tmp_path):
    rng = np.random.default_rng(7)
    store.add("img", unit(rng, 4, 8), fingerprint="fp-a", ids=["a", "bé", "", "d"], labels=[1, None, "x", 2],
              paths=["p/1.png", None, "p/3.png", None], metas=[{"n": 1}, None, {"u": "ü"}, {}])
    store.close()
    snippet = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    code = next(block for block in snippet if "def read_collection" in block)
    namespace: dict = {}
    exec(compile(code, str(DOCS), "exec"), namespace)
    plain = namespace["read_collection"](str(tmp_path / "s.h5"), "img")
    with EmbeddingStore(tmp_path / "s.h5", mode="r") as reader:
        entries = reader.entries("img", range(4))
        np.testing.assert_array_equal(plain["vectors"], reader.vectors("img"))
    assert plain["ids"] == ["a", "bé", "2", "d"] == [e["id"] for e in entries]  # "" id -> row number
    assert plain["labels"] == ["1", "", "x", "2"]
    assert plain["paths"] == ["p/1.png", "", "p/3.png", ""]
    assert plain["meta"] == [{"n": 1}, {}, {"u": "ü"}, {}]
    assert plain["content_hash"] == [e["content_hash"] for e in entries]
    assert plain["attrs"]["fingerprint"] == "fp-a" and plain["attrs"]["dim"] == 8


# --- crash safety ------------------------------------------------------------------------------
def lookup3_matches_a_clean_superblock(path: Path) -> bool:
    raw = path.read_bytes()[:48]
    return lookup3(raw[:44]) == int.from_bytes(raw[44:48], "little")


def test_lookup3_is_hdf5s_checksum(store, tmp_path):
    store.close()
    assert lookup3_matches_a_clean_superblock(tmp_path / "s.h5")
    assert status_flags(tmp_path / "s.h5") == 0
    assert clear_status_flags(tmp_path / "s.h5") is False  # nothing to do on a clean file
    assert lookup3(b"") == 0xDEADBEEF and lookup3(b"Four score and seven years ago") == 0x17770551


def start_writer(path: Path, n: int, batch: int, sleep: float = 0.0, collection: str | None = None) -> subprocess.Popen:
    args = [sys.executable, str(WRITER), str(path), str(n), str(batch), "--sleep", str(sleep)]
    if collection:
        args += ["--collection", collection]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_commits(writer: subprocess.Popen, commits: int) -> str:
    """The writer's output up to its ``commits``-th commit line of this run (or its end)."""
    lines = []
    while commits > 0:
        line = writer.stdout.readline()
        if not line:
            break
        lines.append(line)
        commits -= line.startswith("committed ")
    return "".join(lines)


def committed_lines(text: str) -> list[int]:
    return [int(m) for m in re.findall(r"^committed (\d+)$", text, re.M)]


def expected_columns(n: int, dim: int = 16) -> dict:
    binder = FakeBinder(dim=dim)
    data = items(n)
    return {
        "vectors": np.stack([binder.vector(d["input"], "text") for d in data]),
        "ids": [d["input"] for d in data],
        "labels": [str(d["label"]) for d in data],
        "meta": [{"content": d["input"], **d["meta"]} for d in data],  # a phrase is kept as content
        "hashes": [content_hash(d["input"], "text") for d in data],
    }


def check_prefix(path: Path, expected: dict, at_least: int) -> int:
    """The file opens; its committed rows are exactly the first rows of the expected run."""
    if not path.exists():  # killed before the new store's file was renamed into place
        assert at_least == 0
        return 0
    with EmbeddingStore(path, mode="r") as reader:
        if "texts" not in reader.collections():
            assert at_least == 0
            return 0
        n = reader.count("texts")
        assert n >= at_least, f"batches reported committed ({at_least}) are missing: file has {n}"
        np.testing.assert_allclose(reader.vectors("texts"), expected["vectors"][:n], rtol=1e-6)
        entries = reader.entries("texts", range(n))
        assert [e["id"] for e in entries] == expected["ids"][:n]
        assert [e["label"] for e in entries] == expected["labels"][:n]
        assert [e["meta"] for e in entries] == expected["meta"][:n]
        assert [e["content_hash"] for e in entries] == expected["hashes"][:n]
        return n


def raw_datasets(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        group = f["collections/texts"]
        out = {key: group[key][()] for key in group}
        out["attrs"] = {k: v for k, v in group.attrs.items() if k != "created"}
        out["committed"] = int(group["embeddings"].attrs["committed"])
        return out


def assert_same_store(a: Path, b: Path) -> None:
    ra, rb = raw_datasets(a), raw_datasets(b)
    assert ra.keys() == rb.keys()
    for key in ra:
        if isinstance(ra[key], np.ndarray):
            np.testing.assert_array_equal(ra[key], rb[key], err_msg=key)
        else:
            assert ra[key] == rb[key], key


def test_sigkill_keeps_every_reported_batch_and_resume_equals_an_uninterrupted_run(tmp_path):
    n, batch = 400, 20
    path = tmp_path / "killed.h5"
    writer = start_writer(path, n, batch, sleep=0.05)
    reported = []
    while len(reported) < 4:
        line = writer.stdout.readline()
        assert line, writer.stderr.read()
        reported += committed_lines(line)
    writer.send_signal(signal.SIGKILL)
    rest, _ = writer.communicate(timeout=30)
    reported += committed_lines(rest)
    assert writer.returncode == -signal.SIGKILL
    assert max(reported) < n  # it really died mid-way
    assert status_flags(path) != 0  # the superblock still says "open for writing"
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(path, "r")  # what a plain open says about a killed writer's file
    with h5py.File(path, "r", libver="latest", swmr=True) as f:  # ... and SWMR readers still open it
        assert int(f["collections/texts/embeddings"].attrs["committed"]) >= max(reported)
    expected = expected_columns(n)
    stored = check_prefix(path, expected, max(reported))

    # resume: the same command again
    out = subprocess.run([sys.executable, str(WRITER), str(path), str(n), str(batch)], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert "opened recovered=True" in out
    assert f"done added={n - stored} skipped={stored} encoded={n - stored}" in out
    assert status_flags(path) == 0
    check_prefix(path, expected, n)

    reference = tmp_path / "reference.h5"
    subprocess.run([sys.executable, str(WRITER), str(reference), str(n), str(batch)], check=True,
                   capture_output=True, timeout=120)
    assert_same_store(path, reference)
    with h5py.File(path, "r") as f:  # a cleanly closed store opens with plain h5py too
        assert f["collections/texts/embeddings"].shape == (n, 16)


def kill_loop(tmp_path: Path, iterations: int, seed: int, n: int = 6000, batch: int = 10,
              fresh_every: int = 0) -> dict:
    """Kill a resuming writer at random moments, over and over, on the same file; with
    ``fresh_every`` the file is deleted every so many kills, so kills also land while the store
    and its collection are being created. Then finish the run and compare with a clean one."""
    rng = np.random.default_rng(seed)
    path = tmp_path / "loop.h5"
    expected = expected_columns(n)
    stats = {"kills": 0, "recovered": 0, "before_open": 0, "before_first_commit": 0, "during_appends": 0,
             "fresh_files": 0, "counts": []}
    for iteration in range(iterations):
        if fresh_every and iteration % fresh_every == 0:
            path.unlink(missing_ok=True)
            stats["fresh_files"] += 1
        writer = start_writer(path, n, batch)
        # The moment is drawn in progress, not in seconds, so it does not depend on the machine's
        # speed: a quarter of the kills in the first half second (start-up, opening, the first
        # commits), the rest while the next batch is written after 1-40 commits of this run.
        seen = ""
        if rng.random() < 0.25:
            time.sleep(float(rng.uniform(0.0, 0.5)))
        else:
            seen = read_commits(writer, int(rng.integers(1, 41)))
        writer.send_signal(signal.SIGKILL)
        out, err = writer.communicate(timeout=60)
        out = seen + out
        if writer.returncode == 0:
            break
        assert writer.returncode == -signal.SIGKILL, err
        stats["kills"] += 1
        stats["recovered"] += "recovered=True" in out
        reported = committed_lines(out)
        phase = "before_open" if "opened" not in out else "during_appends" if reported else "before_first_commit"
        stats[phase] += 1
        stats["counts"].append(check_prefix(path, expected, max(reported, default=0)))
    # finish, and make the reference, in big batches: the content must not depend on batching
    final = subprocess.run([sys.executable, str(WRITER), str(path), str(n), "500"], capture_output=True,
                           text=True, timeout=600, check=True)
    assert "done added=" in final.stdout
    check_prefix(path, expected, n)
    reference = tmp_path / "reference.h5"
    subprocess.run([sys.executable, str(WRITER), str(reference), str(n), "500"], check=True,
                   capture_output=True, timeout=600)
    assert_same_store(path, reference)
    leftovers = [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert not leftovers
    return stats


def test_kills_at_random_moments_never_lose_a_commit(tmp_path):
    stats = kill_loop(tmp_path, iterations=4, seed=0)
    assert stats["kills"] >= 3


@pytest.mark.slow
def test_many_kills_at_random_moments(tmp_path):
    """MMBIND_KILL_ITERATIONS=300 python -m pytest tests/test_store.py -m slow -s"""
    iterations = int(os.environ.get("MMBIND_KILL_ITERATIONS", "60"))
    stats = kill_loop(tmp_path, iterations=iterations, seed=1, n=20000, fresh_every=7)
    print(json.dumps({k: v for k, v in stats.items() if k != "counts"} | {"max_count": max(stats["counts"])}))
    assert stats["kills"] >= iterations // 2
    assert stats["before_open"] and stats["during_appends"] and stats["recovered"]


# --- concurrency -------------------------------------------------------------------------------
def test_reader_searches_while_a_writer_appends(tmp_path):
    n, batch = 1200, 40
    path = tmp_path / "live.h5"
    expected = expected_columns(n)
    writer = start_writer(path, n, batch, sleep=0.03)
    while True:  # wait until the collection exists
        line = writer.stdout.readline()
        assert line, writer.stderr.read()
        if committed_lines(line):
            break
    counts = []
    with EmbeddingStore(path, mode="r") as reader:
        while True:
            count = reader.count("texts")
            counts.append(count)
            # the newest committed entry is found by its own vector, with consistent columns
            hits = reader.search(expected["vectors"][count - 1], "texts", top_k=3)[0]
            assert hits[0]["corpus_id"] == count - 1 and hits[0]["id"] == expected["ids"][count - 1]
            assert hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
            assert all(h["corpus_id"] < reader.count("texts") for h in hits)
            if count == n:
                break
            time.sleep(0.01)
    assert writer.wait(timeout=60) == 0
    assert counts == sorted(counts), "a reader saw the count go backwards"
    assert len(set(counts)) >= 5, f"the reader should see the store grow, saw {sorted(set(counts))}"
    assert counts[0] < n


def test_reader_opened_first_sees_a_new_collection_and_new_rows(tmp_path):
    path = tmp_path / "s.h5"
    subprocess.run([sys.executable, str(WRITER), str(path), "100", "50"], check=True, capture_output=True, timeout=60)
    with EmbeddingStore(path, mode="r") as reader:
        assert reader.collections() == ["texts"] and reader.count("texts") == 100
        subprocess.run([sys.executable, str(WRITER), str(path), "300", "50"], check=True, capture_output=True,
                       timeout=60)
        assert reader.count("texts") == 300  # appended in SWMR mode: seen in place
        subprocess.run([sys.executable, str(WRITER), str(path), "70", "50", "--collection", "more"], check=True,
                       capture_output=True, timeout=60)
        reader.refresh()  # the new collection came with a new file: the reader reopens it
        assert reader.collections() == ["more", "texts"] and reader.count("more") == 70
