"""`mmbind embed`, `search`, `arith` and `index` through click, with a fake binder."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from store_fakes import FakeBinder

from mmbind.cli import cli
from mmbind.commands import embeddings as store_commands
from mmbind.store import EmbeddingStore

store_commands.register(cli) if "embed" not in cli.commands else None


@pytest.fixture
def runner(monkeypatch, tmp_path):
    monkeypatch.setattr(store_commands, "load_binder", lambda directory, device="auto": FakeBinder(dim=16))
    (tmp_path / "binder").mkdir()
    return CliRunner()


def invoke(runner, *args):
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_embed_search_arith_index(runner, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(6):
        (clips / f"c{i}.wav").write_bytes(bytes([i]) * 50)
    store = tmp_path / "s.h5"
    binder = tmp_path / "binder"
    result = invoke(runner, "embed", store, clips, "--binder", binder, "--modality", "audio", "--batch-size", 4)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1]) == {"collection": "audio", "added": 6, "skipped": 0, "count": 6}
    again = invoke(runner, "embed", store, clips, "--binder", binder, "--modality", "audio")
    assert json.loads(again.stdout.splitlines()[-1])["skipped"] == 6
    texts = invoke(runner, "embed", store, "a cat", "a dog", "--binder", binder, "-m", "text", "-c", "phrases")
    assert json.loads(texts.stdout.splitlines()[-1])["added"] == 2

    hits = invoke(runner, "search", store, "id:audio/#3", "-c", "audio", "-k", "2", "--json")
    assert hits.exit_code == 0, hits.output
    parsed = json.loads(hits.stdout)
    assert parsed[0]["corpus_id"] == 3 and parsed[0]["path"].endswith("c3.wav") and len(parsed) == 2

    text_hit = invoke(runner, "search", store, 'text:"a dog"', "-c", "phrases", "--binder", binder, "-k", "1")
    assert text_hit.exit_code == 0 and "a dog" in text_hit.stdout

    np.save(tmp_path / "v.npy", FakeBinder(dim=16).vector(str(clips / "c1.wav"), "audio"))
    arith = invoke(runner, "arith", store, "0.5*audio:" + str(clips / "c1.wav") + " + 0.5*vec:v - 0*id:audio/#0",
                   "-c", "audio", "--binder", binder, "--vec", f"v={tmp_path / 'v.npy'}", "-k", "1")
    assert arith.exit_code == 0, arith.output
    assert "= 0.5*audio:" in arith.stderr and "c1.wav" in arith.stdout

    index = invoke(runner, "index", store, "audio", "--kind", "flat")
    assert index.exit_code == 0, index.output
    assert json.loads(index.stdout)["count"] == 6
    via_faiss = invoke(runner, "search", store, "id:audio/#2", "-c", "audio", "--index", "faiss", "-k", "1", "--json")
    assert json.loads(via_faiss.stdout)[0]["corpus_id"] == 2


def test_cli_errors_are_clean(runner, tmp_path):
    store = tmp_path / "s.h5"
    with EmbeddingStore(store) as s:
        s.create_collection("a", modality="audio", dim=16, fingerprint="fake-16-0")
        s.create_collection("b", modality="text", dim=16, fingerprint="fake-16-0")
    spaces = runner.invoke(cli, ["search", str(store), "text:a dog", "-c", "b"])
    assert spaces.exit_code == 1 and 'a value with spaces needs quotes, e.g. text:"... dog"' in spaces.output
    bad = runner.invoke(cli, ["arith", str(store), "0.5*audio:x.wav +", "-c", "a"])
    assert bad.exit_code == 1
    assert "expected an operand" in bad.output and "at column 18" in bad.output and "^" in bad.output
    which = runner.invoke(cli, ["search", str(store), "id:a/#0"])
    assert which.exit_code == 2 and "choose one with --collection" in which.output
    missing = runner.invoke(cli, ["search", str(store), "id:a/#0", "-c", "a"])
    assert missing.exit_code == 1 and "row 0 is out of range" in missing.output
    budget = runner.invoke(cli, ["search", str(store), "vec:q", "-c", "a", "--memory-budget", "lots"])
    assert budget.exit_code == 2 and "expected a size such as" in budget.output
    both = runner.invoke(cli, ["embed", str(store), "x", "--binder", str(tmp_path / "binder"), "-m", "text",
                               "--dataset", "d"])
    assert both.exit_code == 2 and "either INPUTS or --dataset" in both.output


def test_parse_size():
    assert store_commands.parse_size("256MiB") == 256 * 2**20
    assert store_commands.parse_size("1GB") == 10**9
    assert store_commands.parse_size("4096") == 4096


def test_embed_a_registered_dataset_split(runner, tmp_path, toy_plugin):
    store = tmp_path / "s.h5"
    args = ["embed", store, "--binder", tmp_path / "binder", "-m", "toy-a", "--dataset", "toy-clusters",
            "--split", "test", "-c", "toy"]
    result = invoke(runner, *args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1]) == {"collection": "toy", "added": 200, "skipped": 0, "count": 200}
    with EmbeddingStore(store, mode="r") as s:
        first, last = s.entries("toy", [0, 199])
    assert first["id"] == "toy-clusters/test/0" and first["label"] == "0" and last["label"] == "9"
    # the label is the class name; the metadata holds the pairing key and says the data is simulated
    assert first["meta"] == {"key": "0", "simulated": True} and first["path"] is None
    again = invoke(runner, *args)
    assert json.loads(again.stdout.splitlines()[-1])["skipped"] == 200
    wrong = runner.invoke(cli, [str(a) for a in args[:-4]] + ["--split", "nope"])
    assert wrong.exit_code == 2 and "has splits train, test, not 'nope'" in wrong.output
