"""The run report: every figure is produced from a tiny run's own files, and the markdown carries
the numbers of eval.json. UMAP itself (20 s of numba compilation) runs in the slow test."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import fake_world
from mmbind.evaluation.report import FIGURES, joint_space_sample, plot_losses, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny trained and evaluated run folder, laid out as the pipeline writes it."""
    from mmbind.evaluation.run import evaluate_run

    with fake_world.one_thread(), fake_world.registered():
        folder = tmp_path_factory.mktemp("report") / "run"
        recipe, binder, data = fake_world.train(folder, epochs=3)
        recipe.eval.supervised_epochs = 2  # the knob evaluate_run reads from [eval]; keeps the test quick
        results = evaluate_run(binder, data, recipe, prompt_tower="fw-text")
        results["timing"] = {"train_seconds": 1.0}
        (folder / "eval.json").write_text(json.dumps(results, indent=2))
        yield folder


def _check_figures(folder):
    for name in FIGURES.values():
        data = (folder / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000, name
        import matplotlib.image

        height, width, _ = matplotlib.image.imread(folder / name).shape
        assert height >= 300 and width >= 400, (name, height, width)


def test_report_writes_every_figure_and_the_numbers(run_dir):
    report = write_report(run_dir, projection="pca")
    assert report == run_dir / "report" / "report.md"
    _check_figures(report.parent)
    text = report.read_text()
    for name in FIGURES.values():
        assert f"]({name})" in text, name
    results = json.loads((run_dir / "eval.json").read_text())
    row = next(r for r in results["rows"] if (r["split"], r["modality"]) == ("test", "fw-audio"))
    line = next(line for line in text.splitlines() if line.startswith("| test | fw-audio (simulated) |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3] == f"{100 * row['zero_shot']:.1f}%" and cells[5] == f"{100 * row['linear_probe']:.1f}%"
    assert "**Simulated modalities:** fw-audio, fw-depth" in text
    assert "| fw-audio (simulated) → fw-text | emergent |" in text
    assert "| fw-text → fw-image | paired |" in text
    assert "| language | en | 20 |" in text
    assert "| fw-depth (simulated) |" in text and "| fixed |" in text and "| learned |" in text
    assert "from `embeddings-sample.npz`" in text  # no store in this run
    gap = next(g for g in results["modality_gap"] if (g["split"], g["modality"]) == ("test", "fw-audio"))
    assert "## The modality gap" in text
    assert f"| test | fw-audio (simulated) | {gap['centroid_distance']:.3f} | " \
           f"{100 * gap['own_neighbour_share']:.1f}% |" in text


def test_joint_space_reads_the_embedding_store(run_dir, tmp_path):
    store_module = pytest.importorskip("mmbind.store.store")
    results = json.loads((run_dir / "eval.json").read_text())
    rng = np.random.default_rng(0)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "embeddings-sample.npz").write_bytes((run_dir / "embeddings-sample.npz").read_bytes())
    with store_module.EmbeddingStore(folder / "embeddings.h5") as store:
        store.create_collection("audio-test", modality="fw-audio", dim=32, fingerprint="f")
        store.add("audio-test", rng.normal(size=(30, 32)), fingerprint="f",
                  labels=[str(i % 10) for i in range(29)] + [None])
        store.create_collection("text-test", modality="fw-text", dim=32, fingerprint="f")
        store.add("text-test", rng.normal(size=(5, 32)), fingerprint="f", labels=["seven"] * 5)
    points = joint_space_sample(folder, results)
    assert points["source"] == "embeddings.h5"
    names = points["modality"].tolist()
    assert names.count("fw-audio") == 30 and names.count("fw-text") == 5
    # labels come back as text: class indices ("3") and class names ("seven") both map to the index
    audio_labels = points["labels"][points["modality"] == "fw-audio"]
    assert sorted(audio_labels.tolist()) == sorted([i % 10 for i in range(29)] + [-1])
    assert set(points["labels"][points["modality"] == "fw-text"].tolist()) == {7}
    # the held-out real split comes from the evaluation's sample, marked with its split
    assert names.count("fw-audio (real)") == 40 and "fw-image" not in names
    assert points["embeddings"].shape == (75, 32)


def test_report_command_and_missing_eval(run_dir, tmp_path):
    from mmbind.cli import _register_builtin_commands, cli

    _register_builtin_commands()
    runner = CliRunner()
    out = tmp_path / "elsewhere"
    result = runner.invoke(cli, ["report", str(run_dir), "--projection", "pca", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "report.md").is_file() and f"report: {out / 'report.md'}" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(cli, ["report", str(empty)])
    assert result.exit_code != 0 and "eval.json not found" in result.output


def test_loss_plot_needs_records(tmp_path):
    assert plot_losses([], {}, tmp_path / "loss.png") is None
    bad = tmp_path / "metrics.jsonl"
    bad.write_text('{"stage": "bind"}\nnot json\n')
    from mmbind.evaluation.report import load_metrics

    with pytest.raises(ValueError, match="metrics.jsonl:2: not a JSON object"):
        load_metrics(bad)


@pytest.mark.slow
def test_report_with_umap(run_dir, tmp_path):
    report = write_report(run_dir, output=tmp_path / "umap-report")
    _check_figures(report.parent)
    assert "UMAP with the cosine metric" in report.read_text()


def test_cosine_knn_matches_scikit_learns_exact_neighbours():
    from sklearn.neighbors import NearestNeighbors

    from mmbind.evaluation.report import cosine_knn

    vectors = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    index, distance, _ = cosine_knn(vectors, 15)
    expected_distance, expected_index = NearestNeighbors(n_neighbors=15, metric="cosine").fit(vectors).kneighbors(vectors)
    assert (index[:, 0] == np.arange(300)).all() and (distance[:, 0] == 0).all()
    assert (index == expected_index).all()
    np.testing.assert_allclose(distance[:, 1:], expected_distance[:, 1:], atol=1e-5)
