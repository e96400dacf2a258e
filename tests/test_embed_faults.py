"""`mmbind embed` under bad inputs and repeated runs (issue 16): --skip-bad, an edited file and
--replace, a failed first batch leaving nothing behind, one clean line instead of a traceback;
`mmbind arith` with a leading minus; a text hit shows its phrase."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from store_fakes import FakeBinder

from mmbind.cli import cli
from mmbind.commands import embeddings as store_commands
from mmbind.store import EmbeddingStore, EmbedItem, embed_inputs

store_commands.register(cli) if "embed" not in cli.commands else None


@pytest.fixture(scope="module")
def image_binder(tmp_path_factory) -> Path:
    """A real (untrained) binder with an image tower, saved as a run's model/ folder is."""
    import torch

    from mmbind.binder import Binder, BinderConfig, TowerConfig

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("run") / "model"
    Binder(BinderConfig("image", {"image": TowerConfig("image-cnn-tiny", head="none")})).save_pretrained(folder)
    return folder


@pytest.fixture
def images(tmp_path) -> Path:
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(folder / f"ok{i}.png")
    whole = (folder / "ok0.png").read_bytes()
    (folder / "cut.png").write_bytes(whole[: len(whole) // 3])  # truncated
    (folder / "notes.png").write_text("not an image at all\n")  # wrong format under the right name
    return folder


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_skip_bad_leaves_out_unreadable_inputs_and_names_them(tmp_path, image_binder, images):
    store = tmp_path / "s.h5"
    result = invoke("embed", store, images, "--binder", image_binder, "-m", "image", "--batch-size", 4, "--skip-bad")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary == {"collection": "image", "added": 5, "skipped": 0, "count": 5, "bad": 2}
    assert "skipped 2 bad input(s):" in result.stderr
    assert f"{images / 'cut.png'}: " in result.stderr and f"{images / 'notes.png'}: " in result.stderr
    again = invoke("embed", store, images, "--binder", image_binder, "-m", "image", "--skip-bad")
    assert json.loads(again.stdout.splitlines()[-1])["skipped"] == 5


def test_a_bad_input_stops_embed_with_one_line_and_a_failed_first_batch_leaves_nothing(tmp_path, image_binder,
                                                                                       images):
    store = tmp_path / "s.h5"
    result = invoke("embed", store, images, "--binder", image_binder, "-m", "image")
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "Error: " in result.stderr
    assert "cut.png" in result.stderr or "notes.png" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]  # no store, no lock file

    with EmbeddingStore(store) as handle:  # a store that existed keeps what it had
        embed_inputs(handle, FakeBinder(dim=16), "other", ["a phrase"], modality="text")
    failed = invoke("embed", store, images, "--binder", image_binder, "-m", "image")
    assert failed.exit_code == 1
    with EmbeddingStore(store, mode="r") as handle:
        assert handle.collections() == ["other"]  # the empty collection it created is gone
    assert not store.with_name("s.h5.lock").exists()
    shown = CliRunner().invoke(cli, ["--traceback", "embed", str(store), str(images), "--binder", str(image_binder),
                                     "-m", "image"])
    from mmbind.errors import InputError

    assert isinstance(shown.exception, InputError)  # the stack is there when asked for


@pytest.fixture
def fake_binder(monkeypatch, tmp_path):
    monkeypatch.setattr(store_commands, "load_binder", lambda directory, device="auto": FakeBinder(dim=16))
    (tmp_path / "binder").mkdir()
    return tmp_path / "binder"


def test_an_edited_file_is_reported_and_replace_overwrites_its_entry(tmp_path, fake_binder):
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(4):
        (clips / f"c{i}.wav").write_bytes(bytes([i]) * 50)
    store = tmp_path / "s.h5"
    args = ["embed", store, clips, "--binder", fake_binder, "-m", "audio"]
    assert invoke(*args).exit_code == 0
    (clips / "c2.wav").write_bytes(b"edited" * 10)
    edited = invoke(*args)
    assert edited.exit_code == 0, edited.output
    assert json.loads(edited.stdout.splitlines()[-1]) == {"collection": "audio", "added": 0, "skipped": 3,
                                                          "count": 4, "changed": 1}
    assert "already stored with other content" in edited.stderr and "c2.wav" in edited.stderr
    assert "--replace" in edited.stderr
    with EmbeddingStore(store, mode="r") as handle:
        row = handle.find_ids("audio", [str(clips / "c2.wav")])[str(clips / "c2.wav")]
        old = handle.vectors("audio", [row])[0]

    assert invoke("index", store, "audio").exit_code == 0  # an index of the old vectors
    replaced = invoke(*args, "--replace")
    assert json.loads(replaced.stdout.splitlines()[-1]) == {"collection": "audio", "added": 0, "skipped": 3,
                                                            "count": 4, "replaced": 1}
    assert "removed the FAISS index of 'audio'" in replaced.stderr
    assert not list(tmp_path.glob("s.h5.audio.faiss*"))
    expected = FakeBinder(dim=16).vector(str(clips / "c2.wav"), "audio")
    with EmbeddingStore(store, mode="r") as handle:
        assert handle.find_ids("audio", [str(clips / "c2.wav")])[str(clips / "c2.wav")] == row
        np.testing.assert_allclose(handle.vectors("audio", [row])[0], expected, rtol=1e-6)
        assert not np.allclose(old, expected)
        hits = handle.search(f"id:audio/#{row}", "audio", top_k=1)[0]
        assert hits[0]["corpus_id"] == row
    assert json.loads(invoke(*args).stdout.splitlines()[-1])["skipped"] == 4  # the new content is stored


def test_an_arith_expression_may_start_with_a_minus(tmp_path, fake_binder):
    store = tmp_path / "s.h5"
    assert invoke("embed", store, "a cat", "a dog", "a bird", "--binder", fake_binder, "-m", "text").exit_code == 0
    result = invoke("arith", store, "-0.5*id:text/#0 + id:text/#1", "-k", "1")
    assert result.exit_code == 0, result.output
    assert "= -0.5*id:text/#0 + 1*id:text/#1" in result.stderr and "a dog" in result.stdout
    unary = invoke("search", store, "-id:text/#2", "--top-k", "3", "--json")
    assert unary.exit_code == 0, unary.output
    assert json.loads(unary.stdout)[-1]["id"] == "a bird"  # the negated entry ranks last


def test_a_text_hit_shows_its_phrase(tmp_path):
    store = tmp_path / "s.h5"
    phrases = ["a red square", "a blue circle", "a green triangle"]
    with EmbeddingStore(store) as handle:
        embed_inputs(handle, FakeBinder(dim=16), "text", [EmbedItem(p, id=f"test/text/{i}") for i, p in
                                                           enumerate(phrases)], modality="text")
        assert handle.entries("text", [1])[0]["meta"] == {"content": "a blue circle"}
    result = invoke("search", store, "id:text/test/text/1", "-k", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.split("\n")[0].endswith('test/text/1  "a blue circle"')
