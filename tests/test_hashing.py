"""One content hash for the project (mmbind.hashing): what the loader reads, by the modality's
``input_file``; the store's SHA-256 format; and a plugin modality whose inputs are strings,
embedded, searched and hashed by a core that never names it."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from mmbind.commands.embeddings import _expand_inputs
from mmbind.hashing import content_hash
from mmbind.store import AddResult, EmbeddingStore, embed_inputs


def test_the_hash_is_sha256_of_what_the_loader_reads(tmp_path):
    clip = tmp_path / "a.bin"
    clip.write_bytes(b"x" * 3_000_000)  # read in blocks
    sha = lambda data: hashlib.sha256(data).hexdigest()  # noqa: E731
    # the store's format (docs/store.md): stores written before keep deduplicating
    assert content_hash(clip) == content_hash(str(clip), "audio") == content_hash(b"x" * 3_000_000) == sha(b"x" * 3_000_000)
    assert content_hash("a dog", "text") == sha("a dog".encode())
    a = np.arange(6, dtype=np.float32)
    assert content_hash(a) == sha(b"<f4(6,)" + a.tobytes())
    assert content_hash(a) == content_hash(torch.arange(6, dtype=torch.float32)) != content_hash(a.reshape(2, 3))
    assert content_hash(a) != content_hash(a.astype(np.float64))
    assert content_hash("hello", "text") != content_hash("hello ", "text")
    twin = tmp_path / "b.bin"
    twin.write_bytes(b"x" * 3_000_000)
    assert content_hash(str(twin), "audio") == content_hash(clip)  # the content, not the name
    with pytest.raises(FileNotFoundError, match="missing.wav: file not found"):
        content_hash(tmp_path / "missing.wav")
    with pytest.raises(FileNotFoundError, match="a dog: file not found"):
        content_hash("a dog", "audio")  # for audio a str names a file
    with pytest.raises(TypeError, match="cannot hash a dict"):
        content_hash({})


def test_a_text_file_is_hashed_by_its_bytes_and_a_phrase_by_itself(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("seven")
    first = content_hash("notes.txt", "text")
    assert first == content_hash(tmp_path / "notes.txt", "text") == content_hash(b"seven")
    (tmp_path / "notes.txt").write_text("eight")  # an edited file gets a new hash
    assert content_hash("notes.txt", "text") != first
    assert content_hash("open notes.txt", "text") == hashlib.sha256(b"open notes.txt").hexdigest()


def test_a_plugin_modality_of_strings_is_hashed_embedded_and_searched(caption_plugin, tmp_path, monkeypatch):
    from mmbind.binder import Binder, BinderConfig, TowerConfig

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("a file the caption modality never reads")
    assert content_hash("hello", "caption") == hashlib.sha256(b"hello").hexdigest()
    assert content_hash("notes.txt", "caption") == hashlib.sha256(b"notes.txt").hexdigest()
    assert _expand_inputs(("a red bird", "notes.txt"), "caption") == ["a red bird", "notes.txt"]

    torch.manual_seed(0)
    binder = Binder(BinderConfig("caption", {"caption": TowerConfig("caption-bytes", options={"output_dim": 16})}))
    captions = ["a red bird", "a blue car", "a red bird", "notes.txt", "zebra crossing at night"]
    with EmbeddingStore(tmp_path / "s.h5") as store:
        assert embed_inputs(store, binder, "captions", captions, modality="caption", batch_size=2) == AddResult(4, 1)
        entries = store.entries("captions", range(4))
        assert [e["id"] for e in entries] == ["a red bird", "a blue car", "notes.txt", "zebra crossing at night"]
        assert [e["path"] for e in entries] == [None] * 4  # content, never a file
        assert entries[2]["content_hash"] == content_hash("notes.txt", "caption")
        hits = store.search('caption:"zebra crossing at night"', "captions", top_k=2, binder=binder)[0]
        assert hits[0]["id"] == "zebra crossing at night" and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
        mix = store.search('0.5*caption:"a red bird" + 0.5*id:captions/#1', "captions", top_k=2, binder=binder)[0]
        assert {h["id"] for h in mix} == {"a red bird", "a blue car"}
