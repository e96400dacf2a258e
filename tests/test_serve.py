"""`mmbind serve` without a browser: the map saved in the store, the HTTP API and its safety rules,
previews, dropped files. Stores are made with the fake binder of store_fakes (a hash-seeded unit
vector per input) over real files (the asterisk recordings); the browser tests in
test_serve_browser.py use a trained binder."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from store_fakes import FakeBinder

from mmbind.serve import layout
from mmbind.serve.explorer import Explorer
from mmbind.serve.preview import describe
from mmbind.store.ingest import embed_inputs
from mmbind.store.maps import load_map, save_map
from mmbind.store.store import EmbeddingStore, StoreError

starlette = pytest.importorskip("starlette", reason="the serve extra is not installed: run scripts/setup.sh")
from starlette.testclient import TestClient  # noqa: E402

from mmbind.serve.app import create_app  # noqa: E402

DIGITS = Path("/usr/share/asterisk/sounds/en/digits")
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def make_store(path: Path, binder: FakeBinder, texts: int = 40) -> Path:
    with EmbeddingStore(path) as store:
        embed_inputs(store, binder, "audio", [{"input": str(DIGITS / f"{d}.wav"), "label": WORDS[d]} for d in range(10)],
                     modality="audio")
        embed_inputs(store, binder, "text", [{"input": f"the number {WORDS[i % 10]} ({i})", "label": WORDS[i % 10]}
                                             for i in range(texts)], modality="text")
    return path


@pytest.fixture
def binder():
    return FakeBinder(dim=16)


@pytest.fixture
def store_path(tmp_path, binder):
    return make_store(tmp_path / "store.h5", binder)


@pytest.fixture
def client(store_path, binder):
    explorer = Explorer(store_path, binder, map_method="pca")
    return TestClient(create_app(explorer), base_url="http://127.0.0.1")


# --- the map -------------------------------------------------------------------------------------
def test_map_is_saved_in_the_store_and_reused(store_path, binder, monkeypatch):
    first = Explorer(store_path, binder, map_method="pca")
    with EmbeddingStore(store_path, mode="r") as store:
        saved = load_map(store, layout.MAP_NAME)
    assert saved.method == "pca" and set(saved.positions) == {"audio", "text"}
    assert saved.positions["audio"].shape == (10, 2) and saved.positions["text"].shape == (40, 2)
    np.testing.assert_array_equal(saved.positions["text"], first.positions["text"])

    def no_layout(*args, **kwargs):
        raise AssertionError("the saved map should have been used")

    monkeypatch.setattr("mmbind.serve.explorer.compute_layout", no_layout)
    second = Explorer(store_path, binder)
    np.testing.assert_array_equal(second.positions["audio"], first.positions["audio"])
    assert second.map_info["method"] == "pca" and second.map_info["placed"] == 0


def test_entries_added_later_are_placed_among_their_neighbours(store_path, binder, monkeypatch):
    Explorer(store_path, binder, map_method="pca")
    with EmbeddingStore(store_path) as store:  # a near copy of text row 3, added after the map
        near = store.vectors("text", [3]) + 0.01 * np.random.default_rng(0).normal(size=(1, 16))
        store.add("text", near, fingerprint=binder.fingerprint(), labels=["three"])
    monkeypatch.setattr("mmbind.serve.explorer.compute_layout", lambda *a, **k: pytest.fail("recomputed"))
    explorer = Explorer(store_path, binder)
    assert explorer.map_info["placed"] == 1 and explorer.collections["text"].count == 41
    xy = explorer.positions["text"]
    nearest = np.argsort(np.linalg.norm(xy[:40] - xy[40], axis=1))[:3]
    assert 3 in nearest


def test_a_map_of_vectors_since_replaced_is_computed_again(store_path, binder):
    import h5py

    with Explorer(store_path, binder, map_method="pca") as first:
        pass
    with h5py.File(store_path, "r+") as f:  # as if the map had been computed for another binder's vectors
        f["maps"][layout.MAP_NAME]["text"].attrs["fingerprint"] = "another-binder"
        f["maps"][layout.MAP_NAME]["text"][...] = 0.0
    explorer = Explorer(store_path, binder, map_method="pca")
    np.testing.assert_allclose(explorer.positions["text"], first.positions["text"], atol=1e-5)  # computed again
    with EmbeddingStore(store_path, mode="r") as store:
        assert load_map(store, layout.MAP_NAME).fingerprints["text"] == binder.fingerprint()


def test_save_map_checks_its_input_and_a_failed_change_leaves_the_store(store_path):
    with EmbeddingStore(store_path, mode="r") as reader, pytest.raises(StoreError, match="read-only"):
        save_map(reader, "m", {"text": np.zeros((40, 2))}, method="pca")
    with EmbeddingStore(store_path) as store:
        with pytest.raises(StoreError, match="'text'.*rows <= 40"):
            save_map(store, "m", {"text": np.zeros((41, 2))}, method="pca")
        with pytest.raises(StoreError, match="no collection 'nope'"):
            save_map(store, "m", {"nope": np.zeros((1, 2))}, method="pca")
        with pytest.raises(StoreError, match="finite"):
            save_map(store, "m", {"text": np.full((2, 2), np.nan)}, method="pca")

        def broken(file):
            file.create_group("maps/half-done")
            raise RuntimeError("killed half way")

        with pytest.raises(StoreError, match="killed half way.*the store is unchanged"):
            store.restructure(broken)
        assert load_map(store, "half-done") is None and store.count("text") == 40  # the old file, still open
        save_map(store, "m", {"text": np.ones((40, 2))}, method="pca", params={"why": "test"})
        store.add("text", np.ones((1, 16)), fingerprint="fake-16-0")  # the writer still appends
    with EmbeddingStore(store_path, mode="r") as reader:
        assert load_map(reader, "m").params == {"why": "test"} and reader.count("text") == 41


def test_pca_and_umap_layouts():
    vectors = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    xy, method, _ = layout.compute_layout(vectors, "pca")
    assert method == "pca" and xy.shape == (200, 2) and xy.dtype == np.float32
    top = np.linalg.svd(vectors - vectors.mean(0), full_matrices=False)[2][:2]
    np.testing.assert_allclose(np.abs(xy), np.abs((vectors - vectors.mean(0)) @ top.T), rtol=1e-3, atol=1e-4)
    assert layout.compute_layout(vectors[:10], "auto")[1] == "pca"  # too few points for UMAP
    with pytest.raises(ValueError, match="tsne"):
        layout.compute_layout(vectors, "tsne")
    np.testing.assert_allclose(layout.place(np.array([[0, 0], [10, 0]]), np.array([0.9, 0.9])), [5, 0])


# --- the HTTP API --------------------------------------------------------------------------------
def test_meta_and_map_bytes(client):
    meta = client.get("/api/meta").json()
    assert meta["total"] == 50 and [c["name"] for c in meta["collections"]] == ["audio", "text"]
    assert meta["labels"][:3] == ["zero", "one", "two"] and not meta["allow_embed"]
    body = client.get("/api/map.bin").content
    xy = np.frombuffer(body[:400], dtype="<f4").reshape(50, 2)
    codes = np.frombuffer(body[400:500], dtype="<u2")
    assert np.isfinite(xy).all() and [meta["labels"][c] for c in codes[:3]] == ["zero", "one", "two"]


def test_search_plain_text_and_expressions(client, store_path):
    answer = client.get("/api/search", params={"q": "the number seven (7)", "target": "text", "k": 3}).json()
    assert answer["expression"] == 'text:"the number seven (7)"'
    # the fake binder hashes its input: only the identical text scores 1
    assert answer["results"][0]["words"] == "the number seven (7)" and answer["results"][0]["score"] == pytest.approx(1.0)
    assert len(answer["position"]) == 2
    answer = client.get("/api/search", params={"q": 'id:audio/#7 - text:"seven" + text:"7"', "target": "audio"}).json()
    assert answer["terms"] == "1*id:audio/#7 - 1*text:seven + 1*text:7" and len(answer["results"]) == 10
    assert answer["results"][0]["kind"] == "sound"


@pytest.mark.parametrize("in_memory", [True, False])
def test_search_ranks_as_the_store_does(store_path, binder, monkeypatch, in_memory):
    """Collections searched in memory and those streamed from the file (over IN_MEMORY_BYTES)
    give the store's own ranking and scores."""
    from mmbind.serve import explorer as module

    if not in_memory:
        monkeypatch.setattr(module, "IN_MEMORY_BYTES", 0)
    query = 'id:audio/#7 - text:"seven" + 0.5*text:"the number seven (7)"'
    explorer = Explorer(store_path, binder, map_method="pca")
    for target in ("audio", "text"):
        got = explorer.search(query, target, 7)["results"]
        with EmbeddingStore(store_path, mode="r") as store:
            want = store.search(query, target, top_k=7, binder=binder)[0]
        assert [r["row"] for r in got] == [w["corpus_id"] for w in want]
        np.testing.assert_allclose([r["score"] for r in got], [w["score"] for w in want], atol=1e-5)
    assert bool(explorer._vectors) == in_memory


@pytest.mark.parametrize("query, column, words", [
    ("id:audio/#7 +", 14, "expected an operand"),
    ('text:"seven', 6, "unterminated string"),
    ("audio:a * audio:b", 9, "cannot multiply two vectors"),
])
def test_a_bad_expression_answers_its_column(client, query, column, words):
    response = client.get("/api/search", params={"q": query, "target": "audio"})
    assert response.status_code == 400
    body = response.json()
    assert body["column"] == column and words in body["error"] and "^" in body["error"]


def test_errors_are_messages_never_tracebacks(client, monkeypatch):
    for params, words in [({"q": "id:audio/#99", "target": "audio"}, "row 99 is out of range"),
                          ({"q": "id:audio/#1", "target": "nope"}, "no collection 'nope'"),
                          ({"q": "id:audio/#1", "target": "audio", "k": "many"}, "expected a whole number"),
                          ({"q": "id:audio/#1", "target": "audio", "k": "1000"}, "expected 1..100"),
                          ({"q": "", "target": "audio"}, "type a query"),
                          ({"q": "vec:nothing", "target": "audio"}, "no vector named 'nothing'")]:
        response = client.get("/api/search", params=params)
        assert response.status_code == 400 and words in response.json()["error"], (params, response.json())
    monkeypatch.setattr(Explorer, "search", lambda *a, **k: 1 / 0)
    response = TestClient(client.app, base_url="http://127.0.0.1", raise_server_exceptions=False).get(
        "/api/search", params={"q": "x", "target": "audio"})
    assert response.status_code == 500 and "ZeroDivisionError" in response.json()["error"]
    assert "Traceback" not in response.text


def test_query_operands_may_name_only_recorded_files(client):
    recorded = str(DIGITS / "3.wav")
    assert client.get("/api/search", params={"q": f"audio:{recorded}", "target": "text"}).status_code == 200
    for path in ["/etc/passwd", str(DIGITS / "3.wav/../4.wav"), str(DIGITS / "30.wav")]:
        response = client.get("/api/search", params={"q": f"audio:{path}", "target": "text"})
        assert response.status_code == 400 and "recorded in the store" in response.json()["error"], path
        assert response.json()["column"] == 1


def test_previews_only_for_source_files_recorded_in_the_store(client):
    recorded = DIGITS / "5.wav"
    response = client.get("/file", params={"path": str(recorded)})
    assert response.status_code == 200 and response.content == recorded.read_bytes()
    refused = ["/etc/passwd", "../../../../etc/passwd", str(DIGITS / "5.wav/../6.wav"), str(DIGITS / "15.wav"),
               str(DIGITS) + "//5.wav", "digits/5.wav", "", str(DIGITS)]
    for path in refused:
        assert client.get("/file", params={"path": path}).status_code == 404, path
    for url in ["/file/etc/passwd", "/static/../explorer.py", "/static/%2e%2e/explorer.py", "/api/media/audio/..%2f..%2fetc"]:
        assert client.get(url).status_code == 404, url


def test_items_and_media(client):
    item = client.get("/api/item/audio/7").json()
    assert item["kind"] == "sound" and item["label"] == "seven" and item["sample_rate"] == 8000
    assert len(item["envelope"]["max"]) == 400 and min(item["envelope"]["min"]) < 0 < max(item["envelope"]["max"])
    import soundfile

    samples, rate = soundfile.read(io.BytesIO(client.get("/api/media/audio/7").content))
    assert rate == 8000 and len(samples) == 6561
    text = client.get("/api/item/text/12").json()
    assert text["kind"] == "words" and text["words"] == "the number two (12)"  # a phrase is stored under its text
    assert client.get("/api/media/text/12").status_code == 400
    assert client.get("/api/item/text/40").status_code == 400
    assert client.get("/api/item/nope/0").status_code == 400


def test_requests_for_other_hosts_and_origins_are_refused(client):
    assert client.get("/", headers={"host": "attacker.example"}).status_code == 400
    wav = (DIGITS / "1.wav").read_bytes()
    response = client.post("/api/upload", params={"filename": "1.wav"}, content=wav,
                           headers={"origin": "http://attacker.example"})
    assert response.status_code == 403


def test_a_dropped_file_becomes_a_query(client, store_path):
    wav = (DIGITS / "8.wav").read_bytes()
    answer = client.post("/api/upload", params={"filename": "eight.wav"}, content=wav).json()
    assert answer["modality"] == "audio" and answer["operand"].startswith("vec:upload-") and not answer["stored"]
    found = client.get("/api/search", params={"q": answer["operand"], "target": "audio", "k": 1}).json()["results"]
    assert found[0]["label"] == "eight" and found[0]["score"] == pytest.approx(1.0)  # the same bytes, the same vector
    with EmbeddingStore(store_path, mode="r") as store:
        assert store.collections() == ["audio", "text"]  # nothing written without --allow-embed


def test_upload_limits_and_bad_files(client, store_path, binder):
    wav = (DIGITS / "8.wav").read_bytes()
    small = TestClient(create_app(Explorer(store_path, binder, upload_limit=1000)), base_url="http://127.0.0.1")
    response = small.post("/api/upload", params={"filename": "8.wav"}, content=wav)
    assert response.status_code == 413 and "1000 bytes" in response.json()["error"]
    cases = [({"filename": "8.wav", "store": "1"}, wav, "--allow-embed"),
             ({"filename": "notes.xyz"}, wav, "no modality of this binder reads .xyz"),
             ({"filename": "noext"}, wav, "extension"),
             ({"filename": "8.wav"}, b"RIFF not really a wav", "8.wav: cannot read it"),
             ({"filename": "8.wav", "modality": "depth"}, wav, "no 'depth' modality")]
    for params, content, words in cases:
        response = client.post("/api/upload", params=params, content=content)
        assert response.status_code == 400 and words in response.json()["error"], (params, response.json())
        assert "/tmp/" not in response.json()["error"]  # the temporary file is not named


def test_allow_embed_writes_a_dropped_file_into_the_store(store_path, binder):
    explorer = Explorer(store_path, binder, allow_embed=True, map_method="pca")
    client = TestClient(create_app(explorer), base_url="http://127.0.0.1")
    wav = (DIGITS / "2.wav").read_bytes()
    answer = client.post("/api/upload", params={"filename": "two.wav", "store": "1"}, content=wav).json()
    assert answer["stored"] and answer["operand"] == "id:uploads-audio/#0"
    meta = client.get("/api/meta").json()
    assert meta["total"] == 51 and meta["collections"][-1]["name"] == "uploads-audio"
    item = client.get("/api/item/uploads-audio/0").json()
    assert item["kind"] == "sound" and item["meta"] == {"uploaded": "two.wav"}
    kept = Path(item["path"])
    assert kept.parent == store_path.with_name("store.h5.uploads") and kept.read_bytes() == wav
    assert client.get("/file", params={"path": str(kept)}).content == wav  # now a recorded source file
    found = client.get("/api/search", params={"q": answer["operand"], "target": "audio", "k": 1}).json()
    assert found["results"][0]["label"] == "two"
    again = client.post("/api/upload", params={"filename": "again.wav", "store": "1"}, content=wav).json()
    assert again["operand"] == "id:uploads-audio/#0"  # the same content is stored once
    assert explorer.map_info["placed"] == 1  # placed among its neighbours, the map was not recomputed


# --- previews ------------------------------------------------------------------------------------
def test_previews_follow_what_load_returns():
    from collections import namedtuple
    from dataclasses import dataclass

    import PIL.Image
    import soundfile

    Sound = namedtuple("Sound", "samples sample_rate")

    @dataclass
    class Relief:
        values: np.ndarray
        kind: str

    rng = np.random.default_rng(0)
    assert describe("a red seven").summary() == {"kind": "words", "words": "a red seven"}
    sound = describe(Sound(rng.uniform(-1, 1, 16000).astype(np.float32), 16000))
    assert sound.kind == "sound" and sound.summary()["seconds"] == 1.0
    data, media_type = sound.media()
    assert media_type == "audio/wav" and soundfile.info(io.BytesIO(data)).frames == 16000
    rgb = describe(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    png, media_type = rgb.media()
    assert rgb.kind == "picture" and media_type == "image/png"
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(io.BytesIO(png))), rgb.array)
    imu = describe(rng.normal(size=(6, 256)).astype(np.float32))
    assert imu.kind == "series" and len(imu.summary()["series"]) == 6 and imu.media() is None
    depth = describe(Relief(np.linspace(0.5, 1.5, 1024, dtype=np.float32).reshape(32, 32), "depth_m"))
    assert depth.kind == "picture" and depth.array.shape == (32, 32, 3)
    assert not np.array_equal(depth.array[0, 0], depth.array[-1, -1])  # near and far differ in colour
    with pytest.raises(ValueError, match="cannot show"):
        describe(object())


def test_items_of_a_run_come_from_its_dataset(tmp_path, toy_plugin):
    """Entries stored by `mmbind run` (ids <split>/<modality>/<i>) show the dataset's inputs."""
    from mmbind.serve.sources import Sources

    import mmbind

    sources = Sources("toy-clusters", {})
    data = mmbind.load_dataset("toy-clusters")
    modality = next(iter(data.splits["test"]))
    expected = data.splits["test"][modality].inputs[4]
    raw = sources.raw(modality, {"id": f"test/{modality}/4", "path": None})
    np.testing.assert_array_equal(np.asarray(raw), mmbind.get_modality(modality).load(expected))
    assert sources.raw(modality, {"id": f"test/{modality}/99999", "path": None}) is None
    assert sources.raw(modality, {"id": "something else", "path": None}) is None
    assert Sources.from_recipe(tmp_path / "missing.toml").dataset is None


# --- the command ---------------------------------------------------------------------------------
def test_the_command_is_registered_and_cheap_to_import():
    code = ("import sys; from mmbind.cli import cli, _register_builtin_commands; _register_builtin_commands(); "
            "assert 'serve' in cli.commands; heavy = {'torch', 'starlette', 'uvicorn', 'umap'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
    from click.testing import CliRunner

    from mmbind.cli import cli
    from mmbind.commands import serve

    serve.register(cli) if "serve" not in cli.commands else None
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "--allow-embed" in result.output and "127.0.0.1" in result.output


def test_allowed_hosts():
    from mmbind.commands.serve import allowed_hosts

    assert allowed_hosts("127.0.0.1") == ["127.0.0.1", "localhost"]
    assert allowed_hosts("0.0.0.0") == ["*"]
    assert "myhost" in allowed_hosts("myhost")
