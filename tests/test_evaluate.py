"""Evaluation: metrics on hand-made embeddings, a full evaluate_run on a small trained fake world,
the `mmbind eval` / `mmbind compare` commands, and the quality benchmark's markdown."""
import importlib.util
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import fake_world
from mmbind.evaluation.metrics import (
    accuracy, confusion_matrix, group_scores, recall_at_k, relevant, relevant_counts, retrieval_metrics,
)
from mmbind.evaluation.results import flatten_metrics, format_comparison, format_table
from mmbind.evaluation.zero_shot import zero_shot_predict

ROOT = Path(__file__).parent.parent


# --- metrics on hand-made numbers ----------------------------------------------------------------
def test_recall_at_k_counts_key_matches_in_both_directions():
    gallery = np.eye(4, dtype=np.float32)
    gallery_keys = ["0/red", "1/blue", "2/red", "3/blue"]
    # query i points at gallery (i + 1) % 4 first and at gallery i second
    queries = np.array([0.6 * gallery[(i + 1) % 4] + 0.4 * gallery[i] for i in range(4)], dtype=np.float32)
    assert recall_at_k(queries, ["0", "1", "2", "3"], gallery, gallery_keys, ks=(1, 2)) == {1: 0.0, 2: 1.0}
    # "1/blue" extends the query key "1", and a query "1/blue/x" extends the gallery key: both relevant
    assert relevant("1", "1/blue") and relevant("1/blue/x", "1/blue") and not relevant("1", "10/blue")


def test_linear_probe_chooses_its_regularisation_on_held_out_samples():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mmbind.evaluation.baselines import fit_linear_probe

    # a weak signal spread over 50 of 100 dimensions, 150 samples: C = 1 fits the noise
    rng = np.random.default_rng(0)

    def world(n):
        labels = rng.integers(0, 2, n)
        x = rng.normal(size=(n, 100))
        x[:, :50] += 0.1 * (2 * labels - 1)[:, None]
        return x, labels

    x, y = world(150)
    test_x, test_y = world(2000)
    probe = fit_linear_probe(x, y)
    assert probe.chosen_C < 1.0 and probe[-1].C == probe.chosen_C
    plain = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    assert probe.score(test_x, test_y) > plain.score(test_x, test_y) + 0.02
    assert fit_linear_probe(x[:18], y[:18]).chosen_C == 1.0  # under 10 of a class: nothing held out


def test_relevant_counts_match_brute_force():
    rng = np.random.default_rng(0)
    parts = ["1", "2", "12", "1/red", "1/red/a", "2/blue", "12/red"]
    queries = list(rng.choice(parts, 40))
    gallery = list(rng.choice(parts, 60))
    expected = [sum(relevant(q, g) for g in gallery) for q in queries]
    assert relevant_counts(queries, gallery).tolist() == expected


def test_retrieval_metrics_leave_out_queries_without_partners_and_give_chance():
    gallery = np.eye(10, dtype=np.float32)
    keys = [str(i) for i in range(10)]
    queries = gallery[[0, 1, 2, 3]]
    metrics = retrieval_metrics(queries, ["0", "1", "9x", "3"], gallery, keys, ks=(1, 5))
    assert metrics["n_queries"] == 3 and metrics["unmatched"] == 1
    assert metrics["R@1"] == 1.0
    # one relevant item among 10: a random ranking finds it in the top 1 / top 5 with p 0.1 / 0.5
    assert metrics["chance_R@1"] == pytest.approx(0.1) and metrics["chance_R@5"] == pytest.approx(0.5)


def test_recall_handles_ties_and_larger_k_than_gallery():
    gallery = np.ones((3, 2), dtype=np.float32) / math.sqrt(2)
    result = recall_at_k(gallery[:1], ["a"], gallery, ["b", "c", "a"], ks=(1, 10))
    assert result[10] == 1.0  # k above the gallery size means the whole gallery


def test_zero_shot_accuracy_confusion_and_unknown_labels():
    classes = np.eye(3, dtype=np.float32)
    embeddings = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    labels = [0, 1, 2, -1]  # the last label is unknown and must not count
    assert accuracy(zero_shot_predict(embeddings, classes), labels) == pytest.approx(2 / 3)
    assert confusion_matrix(labels, [0, 1, 1, 2], 3) == [[1, 0, 0], [0, 1, 0], [0, 1, 0]]
    assert math.isnan(accuracy([0], [-1]))


def test_group_scores_per_speaker_and_language():
    meta = [{"speaker": "a", "language": "en"}, {"speaker": "a", "language": "en"},
            {"speaker": "b", "language": "es"}, {"speaker": "b"}]
    groups = group_scores(meta, [1, 2, 3, 4], {"zero_shot": np.array([1, 0, 3, 4])}, ["speaker", "language", "x"])
    assert groups["speaker"] == {"a": {"n": 2, "zero_shot": 0.5}, "b": {"n": 2, "zero_shot": 1.0}}
    assert groups["language"] == {"en": {"n": 2, "zero_shot": 0.5}, "es": {"n": 1, "zero_shot": 1.0}}
    assert "x" not in groups


def _results(zs_audio: float, r1: float, seed: int = 0) -> dict:
    return {
        "recipe": "r", "seed": seed, "anchor": "image", "split": "test", "simulated": ["imu"],
        "modalities": ["image", "audio"], "versions": {"mmbind": "0.1.0"}, "data_sizes": {"test": {"audio": 10}},
        "rows": [{"split": "test", "modality": "audio", "n": 10, "zero_shot": zs_audio, "chance": 0.1,
                  "groups": {"language": {"en": {"n": 5, "zero_shot": zs_audio}}}}],
        "retrieval": [{"split": "test", "query": "audio", "gallery": "image", "kind": "paired", "R@1": r1}],
    }


def test_flatten_and_compare_two_runs():
    a, b = _results(0.5, 0.9), _results(0.75, 0.8, seed=1)
    assert flatten_metrics(a) == {"test/audio zero_shot": 0.5, "test/audio language=en zero_shot": 0.5,
                                  "test audio->image R@1": 0.9}
    text = format_comparison(a, b)
    assert "seed: A=0  B=1" in text
    line = next(line for line in text.splitlines() if line.startswith("test/audio zero_shot"))
    assert line.split()[-3:] == ["50.0%", "75.0%", "+25.0"]
    line = next(line for line in text.splitlines() if line.startswith("test audio->image R@1"))
    assert line.split()[-1] == "-10.0"


def test_compare_prints_the_gap_distance_plainly():
    a, b = _results(0.5, 0.9), _results(0.75, 0.8, seed=1)
    a["modality_gap"] = [{"split": "test", "modality": "audio", "centroid_distance": 0.4, "own_neighbour_share": 0.9}]
    b["modality_gap"] = [{"split": "test", "modality": "audio", "centroid_distance": 0.3, "own_neighbour_share": 0.6}]
    lines = format_comparison(a, b).splitlines()
    assert next(x for x in lines if "gap centroid_distance" in x).split()[-3:] == ["0.400", "0.300", "-0.100"]
    assert next(x for x in lines if "gap own_neighbour_share" in x).split()[-3:] == ["90.0%", "60.0%", "-30.0"]


# --- a real (small) run --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    with fake_world.one_thread():
        with fake_world.registered():
            run_dir = tmp_path_factory.mktemp("eval") / "run"
            recipe, binder, data = fake_world.train(run_dir, epochs=4)
            yield recipe, binder, data


def test_evaluate_run_covers_every_pair_and_the_bounds(trained):
    from mmbind.evaluation.run import evaluate_run

    recipe, binder, data = trained
    with fake_world.registered():
        results = evaluate_run(binder, data, recipe, prompt_tower="fw-text")
    json.loads(json.dumps(results))  # JSON-able as the pipeline writes it
    modalities = ["fw-image", "fw-text", "fw-audio", "fw-depth"]
    pairs = {(r["split"], r["query"], r["gallery"]): r for r in results["retrieval"]}
    expected = {("test", q, g) for q, g in itertools.permutations(modalities, 2)}
    expected |= {("real", "fw-audio", g) for g in modalities if g != "fw-audio"}
    assert set(pairs) == expected
    for (split, q, g), r in pairs.items():
        assert r["kind"] == ("paired" if "fw-image" in (q, g) else "emergent")
        assert 0.0 <= r["R@1"] <= r["R@5"] <= r["R@10"] <= 1.0
    # trained pairs retrieve far above chance (0.1): the metric sees the alignment
    assert pairs["test", "fw-audio", "fw-image"]["R@1"] > 0.5
    assert pairs["test", "fw-audio", "fw-image"]["chance_R@1"] == pytest.approx(0.1)

    rows = {(r["split"], r["modality"]): r for r in results["rows"]}
    assert set(rows) == {("test", m) for m in modalities} | {("real", "fw-audio")}
    for row in rows.values():
        assert row["chance"] == pytest.approx(0.1)
        assert np.array(row["confusion"]).sum() == row["n"]
        assert row["supervised_bound"] == max(row["linear_probe"], row["supervised"])
        assert row["zero_shot_of_bound"] == pytest.approx(row["zero_shot"] / row["supervised_bound"])
    assert rows["test", "fw-text"]["zero_shot"] > 0.5
    assert rows["test", "fw-audio"]["linear_probe"] > 0.8  # labels reach far above chance
    assert rows["test", "fw-audio"]["R@1_to_anchor"] == pairs["test", "fw-audio", "fw-image"]["R@1"]
    real = rows["real", "fw-audio"]
    assert real["groups"]["language"].keys() == {"en", "es"}
    assert real["groups"]["language"]["en"]["n"] == 20 and set(real["groups"]["speaker"]) == {"s0", "s1", "s2", "s3"}
    assert results["simulated"] == ["fw-audio", "fw-depth"] and results["seed"] == 1
    assert {"mmbind", "torch", "python", "platform"} <= set(results["versions"])
    assert results["data_sizes"]["real"] == {"fw-audio": 40}
    assert results["supervised_info"]["fw-audio"]["train_samples"] == 300

    with np.load(recipe.run_dir / "embeddings-sample.npz", allow_pickle=False) as sample:
        assert sample["embeddings"].shape == (len(sample["labels"]), binder.dim)
        assert set(sample["modality"]) == set(modalities) and "real" in set(sample["split"])

    gaps = {(g["split"], g["modality"]): g for g in results["modality_gap"]}
    assert set(gaps) == {("test", m) for m in modalities[1:]} | {("real", "fw-audio")}  # every bound modality
    for g in gaps.values():
        assert 0.0 <= g["centroid_distance"] <= 2.0 and 0.0 <= g["own_neighbour_share"] <= 1.0
        assert g["temperature"] == pytest.approx(binder.temperature(g["modality"]))
    assert gaps["test", "fw-audio"]["n"] == min(data.splits["test"]["fw-audio"].labels.__len__(),
                                                len(data.splits["test"]["fw-image"]), 1000)

    table = format_table(results)
    assert "fw-depth (simulated)" in table and "*" in table and "by language" in table
    assert "modality gap to fw-image" in table and "test fw-audio (simulated): centroid distance" in table
    flat = flatten_metrics(results)
    assert flat["test/fw-audio gap centroid_distance"] == gaps["test", "fw-audio"]["centroid_distance"]


def test_eval_and_compare_commands(trained, tmp_path):
    from mmbind.cli import _register_builtin_commands, cli

    recipe, binder, _ = trained
    _register_builtin_commands()
    runner = CliRunner()
    with fake_world.registered():
        run = str(recipe.run_dir)
        result = runner.invoke(cli, ["eval", run, "--no-supervised", "--text-modality", "fw-text"])
        assert result.exit_code == 0, result.output
        saved = json.loads((recipe.run_dir / "eval.json").read_text())
        assert saved["checkpoint"].endswith("model") and "linear_probe" not in saved["rows"][0]
        assert "retrieval R@1" in result.output

        checkpoint = sorted((recipe.run_dir / "checkpoints").glob("epoch-*"))[0]
        result = runner.invoke(cli, ["eval", str(checkpoint), "--data", "fake-world", "--option", "n_per_class=10",
                                     "--template", "the number {}", "--no-supervised", "--text-modality", "fw-text"])
        assert result.exit_code == 0, result.output
        early = json.loads((checkpoint / "eval.json").read_text())
        assert early["templates"] == ["the number {}"] and early["data_sizes"]["test"]["fw-audio"] == 50

        result = runner.invoke(cli, ["compare", run, str(checkpoint)])
        assert result.exit_code == 0, result.output
        assert "data sizes differ" in result.output and "test fw-audio->fw-text R@1" in result.output

        bad = runner.invoke(cli, ["eval", run, "--template", "no placeholder"])
        assert bad.exit_code != 0 and "has no '{}'" in bad.output
        missing = runner.invoke(cli, ["compare", run, str(tmp_path)])
        assert missing.exit_code != 0 and "no eval.json found" in missing.output
        not_a_checkpoint = runner.invoke(cli, ["eval", str(tmp_path)])
        assert not_a_checkpoint.exit_code != 0 and "not a checkpoint" in not_a_checkpoint.output


def test_eval_command_overrides_the_baseline_budget(trained, tmp_path):
    from mmbind.cli import _register_builtin_commands, cli

    recipe, _, _ = trained
    _register_builtin_commands()
    output = tmp_path / "eval.json"
    with fake_world.registered():
        result = CliRunner().invoke(cli, ["eval", str(recipe.run_dir), "--text-modality", "fw-text", "--threads", "1",
                                          "--baseline-budget", "0.000001", "--output", str(output)])
    assert result.exit_code == 0, result.output
    info = json.loads(output.read_text())["supervised_info"]
    trained_ones = [m for m, i in info.items() if "steps" in i]
    assert trained_ones and all(info[m]["time_limited"] and info[m]["steps"] == 1 for m in trained_ones)


# --- the quality benchmark's aggregation and markdown ---------------------------------------------
def _benchmark():
    spec = importlib.util.spec_from_file_location("quality", ROOT / "benchmarks" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _seed_results(seed: int, image: float, audio: float, text_r1: float, image_r1: float,
                  english: float, real: float) -> dict:
    row = lambda split, m, zs, n=100, **extra: {"split": split, "modality": m, "n": n, "zero_shot": zs, **extra}
    retrieval = lambda q, g, kind, r1: {"split": "test", "query": q, "gallery": g, "kind": kind,
                                        "R@1": r1, "R@5": r1, "R@10": r1}
    return {
        "recipe": "digits", "seed": seed, "dataset": "digits-world", "anchor": "image", "split": "test",
        "simulated": ["imu"], "versions": {"mmbind": "0.1.0"}, "fingerprint": f"f{seed}",
        "timing": {"total_seconds": 100.0 + seed}, "data_sizes": {"test": {"audio": 100}},
        "rows": [row("test", "image", image), row("test", "audio", audio), row("test", "imu", 0.99),
                 row("real", "audio", real, n=60, groups={"language": {
                     "en": {"n": 12, "zero_shot": english}, "es": {"n": 12, "zero_shot": 0.5}}})],
        "retrieval": [retrieval("audio", "text", "emergent", text_r1), retrieval("audio", "image", "paired", image_r1)],
    }


def test_quality_benchmark_aggregates_and_checks_targets():
    quality = _benchmark()
    runs = [_seed_results(0, 0.97, 0.96, 0.90, 0.95, 1.00, 0.85),
            _seed_results(1, 0.99, 0.90, 0.80, 0.90, 0.9167, 0.80),
            _seed_results(2, 0.98, 0.99, 0.95, 0.95, 1.00, 0.75)]
    targets = {t["target"]: t for t in quality.check_targets(runs)}
    image = targets["zero-shot accuracy, test split, image"]
    assert image["status"] == "PASS" and image["stats"]["mean"] == pytest.approx(0.98)
    assert image["stats"]["sd"] == pytest.approx(0.01)
    audio = targets["zero-shot accuracy, test split, audio"]
    assert audio["stats"]["mean"] == pytest.approx(0.95) and audio["status"] == "PASS"
    assert audio["seeds_passing"] == 2
    assert targets["zero-shot accuracy, test split, imu (simulated)"]["status"] == "PASS"
    ratio = targets["emergent audio->text R@1 / paired audio->image R@1"]
    assert ratio["values"] == pytest.approx([0.90 / 0.95, 0.80 / 0.90, 1.0])
    assert ratio["status"] == "PASS"  # mean 0.9123
    english = targets["zero-shot accuracy, real recordings, English (language='en')"]
    assert english["status"] == "PASS" and english["stats"]["mean"] == pytest.approx(0.9722, abs=1e-4)
    assert targets["zero-shot accuracy, real recordings, all clips"]["status"] == "PASS"

    runs[1]["rows"][3]["zero_shot"] = 0.5  # one bad seed pulls the mean below 80%
    runs[2]["retrieval"] = runs[2]["retrieval"][1:]  # a run without audio->text cannot pass it
    targets = {t["target"]: t for t in quality.check_targets(runs)}
    assert targets["zero-shot accuracy, real recordings, all clips"]["status"] == "MISS"
    assert targets["emergent audio->text R@1 / paired audio->image R@1"]["values"][2] is None

    text = quality.render_results([{"recipe": "recipes/digits.toml", "runs": runs, "targets": list(targets.values())}],
                                  {"command": "python benchmarks/quality.py --seeds 0 1 2", "date": "today",
                                   "overrides": {"bind.epochs": 2}})
    assert "| zero-shot accuracy, test split, image | ≥ 95% | 98.0% ± 1.0 (97.0–99.0) | 97.0%, 99.0%, 98.0% | 3/3 | **PASS** |" in text
    assert "zero-shot accuracy, real recordings, all clips (60 clips) | ≥ 80% | 70.0% ±" in text
    assert "**MISS**" in text and "`bind.epochs=2`" in text and "imu (simulated)" in text
    assert "| language | en | 12 |" in text and "every number below was computed by that run" in text
    assert "## Recipe `recipes/digits.toml`" in text and "| digits | 0, 1, 2 |" in text
    assert "| test | audio | 100 | 95.0% ± 4.6 (90.0–99.0) | 96.0%, 90.0%, 99.0% |" in text  # per seed beside the mean


def test_quality_benchmark_renders_from_existing_runs(tmp_path):
    quality = _benchmark()
    for seed in (0, 1):
        folder = tmp_path / f"quality-seed{seed}"
        folder.mkdir()
        (folder / "eval.json").write_text(json.dumps(_seed_results(seed, 0.9, 0.9, 0.5, 0.9, 0.9, 0.9)))
    out = tmp_path / "results.md"
    assert quality.main(["--from-runs", str(tmp_path / "quality-seed0"), str(tmp_path / "quality-seed1"),
                         "--results", str(out)]) == 0
    text = out.read_text()
    assert "seeds 0, 1" in text and "rendered from the eval.json of existing runs" in text
    assert text.count("**MISS**") == 4 and "2 of 6 targets met" in text


def test_quality_benchmark_renders_every_recipe_with_its_gap(tmp_path):
    quality = _benchmark()
    folders = []
    for recipe, seed in (("digits", 0), ("digits", 1), ("fashion", 0)):
        run = _seed_results(seed, 0.9, 0.9, 0.5, 0.9, 0.9, 0.9)
        run["recipe"] = recipe
        run["modality_gap"] = [{"split": "test", "modality": "audio", "temperature": 0.05,
                                "centroid_distance": 0.5 + seed / 10, "own_neighbour_share": 0.6 + seed / 10,
                                "mixed_share": 0.4995, "k": 10, "n": 100}]
        folder = tmp_path / f"{recipe}-{seed}"
        folder.mkdir()
        (folder / "eval.json").write_text(json.dumps(run))
        folders.append(str(folder))
    out = tmp_path / "results.md"
    assert quality.main(["--from-runs", *folders, "--results", str(out), "--note", "machine shared"]) == 0
    text = out.read_text()
    assert "| digits | 0, 1 | 2 of 6 |" in text and "| fashion | 0 | 1 of 2 |" in text and "machine shared" in text
    assert text.count("## Recipe") == 2 and text.count("### The modality gap") == 2
    assert "| test | audio | 0.550 ± 0.071 (0.500–0.600) | 0.500, 0.600 | 65.0% ± 7.1 (60.0–70.0) | 60.0%, 70.0% " \
           "| 50.0% | 0.050 |" in text


def test_supervised_training_respects_its_time_cap(trained):
    from mmbind.evaluation.baselines import predict, train_supervised_encoder

    recipe, binder, data = trained
    train = data.splits["train"]["fw-depth"]
    with fake_world.registered():
        model, info = train_supervised_encoder(binder, "fw-depth", list(train.inputs), list(train.labels), 10,
                                               epochs=3, batch_size=32, max_seconds=0.0)
        assert info == {"steps": 1, "time_limited": True}
        model, info = train_supervised_encoder(binder, "fw-depth", list(train.inputs), list(train.labels), 10,
                                               epochs=2, batch_size=32)
        assert info == {"steps": 2 * 10, "time_limited": False}  # 300 samples / 32 -> 10 steps per epoch
        assert predict(model, binder, "fw-depth", list(train.inputs[:7])).shape == (7,)


def test_zero_shot_api_is_the_eval_code_path(trained):
    from mmbind.evaluation.zero_shot import class_embeddings, zero_shot_predict

    recipe, binder, data = trained
    audio = data.splits["test"]["fw-audio"]
    with fake_world.registered():
        probs = binder.zero_shot(audio.inputs[:40], data.class_names, modality="fw-audio",
                                 templates=["{}"], prompt_modality="fw-text")
        assert probs.shape == (40, len(data.class_names))
        assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        classes = class_embeddings(binder, data.class_names, ["{}"], "fw-text")
        predicted = zero_shot_predict(binder.encode(audio.inputs[:40], "fw-audio"), classes)
        assert (probs.argmax(axis=1) == predicted).all()
        assert (predicted == np.asarray(audio.labels[:40])).mean() > 0.5  # it has learned: not a blind pass
        with pytest.raises(ValueError, match="needs a language tower"):
            binder.zero_shot(audio.inputs[:2], data.class_names, modality="fw-audio")


def test_encode_returns_features_and_embeddings_in_one_pass(trained):
    recipe, binder, data = trained
    inputs = data.splits["test"]["fw-audio"].inputs[:9]
    with fake_world.registered():
        both = binder.encode(inputs, "fw-audio", batch_size=4, output_value=None)
        features = binder.encode(inputs, "fw-audio", output_value="features")
        embeddings = binder.encode(inputs, "fw-audio")
    assert both["features"].shape == (9, binder.encoders["fw-audio"].output_dim)
    assert np.allclose(both["features"], features, atol=1e-5) and np.allclose(both["embedding"], embeddings, atol=1e-5)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-3)  # before the head: not unit rows


def test_evaluate_run_names_bad_settings(trained):
    from mmbind.evaluation.run import evaluate_run

    recipe, binder, data = trained
    with fake_world.registered():
        with pytest.raises(ValueError, match="prompt modality 'nope' is not a tower of this binder"):
            evaluate_run(binder, data, recipe, prompt_tower="nope")
        recipe.eval.extra_splits = ["nope"]
        try:
            with pytest.raises(ValueError, match=r"\[eval\] split 'nope' not in dataset 'fake-world' \(it has train, test, real\)"):
                evaluate_run(binder, data, recipe, prompt_tower="fw-text")
        finally:
            recipe.eval.extra_splits = ["real"]


def test_supervised_baselines_are_cached_by_data_encoder_and_seed(trained, tmp_path, monkeypatch):
    from mmbind.evaluation import baselines
    from mmbind.evaluation.baseline_cache import BaselineCache

    recipe, binder, data = trained
    cfg = recipe.eval.model_copy(update={"supervised_epochs": 1})
    cache = BaselineCache(tmp_path / "baselines")
    present = {"test": ["fw-depth"]}
    with fake_world.registered():
        features = {("test", "fw-depth"): binder.encode(list(data.splits["test"]["fw-depth"].inputs), "fw-depth",
                                                        output_value="features")}
        first = baselines.supervised_baselines(binder, data, present, features, cfg, seed=0, cache=cache)
        assert first["info"]["fw-depth"]["cached"] is False and len(list(cache.root.glob("*.npz"))) == 1

        def must_not_train(*args, **kwargs):
            raise AssertionError("trained again")

        monkeypatch.setattr(baselines, "train_supervised_encoder", must_not_train)
        second = baselines.supervised_baselines(binder, data, present, features, cfg, seed=0, cache=cache)
        assert second["info"]["fw-depth"]["cached"] is True
        assert second["info"]["fw-depth"]["steps"] == first["info"]["fw-depth"]["steps"]
        np.testing.assert_array_equal(second["supervised"]["test", "fw-depth"], first["supervised"]["test", "fw-depth"])
        with pytest.raises(AssertionError, match="trained again"):  # another seed is another baseline
            baselines.supervised_baselines(binder, data, present, features, cfg, seed=1, cache=cache)
        cfg.supervised_lr *= 2  # and so are other training settings (cfg is this test's copy)
        with pytest.raises(AssertionError, match="trained again"):
            baselines.supervised_baselines(binder, data, present, features, cfg, seed=0, cache=cache)


def test_the_budget_is_shared_and_a_stopped_baseline_is_retrained_only_with_more_time(trained, tmp_path,
                                                                                       monkeypatch):
    from mmbind.evaluation import baselines
    from mmbind.evaluation.baseline_cache import BaselineCache

    recipe, binder, data = trained
    cfg = recipe.eval.model_copy(update={"supervised_epochs": 50, "supervised_budget_seconds": 1e-3})
    cache = BaselineCache(tmp_path / "baselines")
    present = {"test": ["fw-audio", "fw-depth"]}
    with fake_world.registered():
        out = baselines.supervised_baselines(binder, data, present, {}, cfg, seed=0, cache=cache)
        for m in present["test"]:
            assert out["info"][m]["time_limited"] is True and out["info"][m]["steps"] == 1
            assert ("test", m) in out["supervised"]
        again = baselines.supervised_baselines(binder, data, present, {}, cfg, seed=0, cache=cache)
        assert all(again["info"][m]["cached"] for m in present["test"])  # the same caps: the same result

        def must_not_train(*args, **kwargs):
            raise AssertionError("trained again")

        monkeypatch.setattr(baselines, "train_supervised_encoder", must_not_train)
        with pytest.raises(AssertionError, match="trained again"):  # more time: it may do better
            baselines.supervised_baselines(binder, data, present, {},
                                           cfg.model_copy(update={"supervised_budget_seconds": 0.0}), seed=0, cache=cache)


def test_zero_supervised_epochs_leave_the_linear_probe_as_the_bound(trained):
    from mmbind.evaluation.run import evaluate_run

    recipe, binder, data = trained
    recipe = recipe.model_copy(update={"eval": recipe.eval.model_copy(update={"supervised_epochs": 0})})
    with fake_world.registered():
        results = evaluate_run(binder, data, recipe, prompt_tower="fw-text")
    row = next(r for r in results["rows"] if (r["split"], r["modality"]) == ("test", "fw-audio"))
    assert "supervised" not in row and row["supervised_bound"] == row["linear_probe"]
    assert "supervised_epochs = 0" in results["supervised_info"]["fw-audio"]["supervised_skipped"]
