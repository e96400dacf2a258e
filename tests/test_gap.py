"""The modality gap (mmbind.evaluation.gap) on hand-made embeddings whose gap is known."""
import numpy as np
import pytest

from mmbind.evaluation.gap import modality_gap


def _cloud(n: int, centre: np.ndarray, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = centre + spread * rng.normal(size=(n, len(centre)))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_same_distribution_has_no_gap():
    centre = np.eye(16)[0]
    a, b = _cloud(400, centre, 0.5, 0), _cloud(400, centre, 0.5, 1)
    gap = modality_gap(b, np.arange(400) % 10, a, np.arange(400) % 10)
    assert gap["centroid_distance"] < 0.1
    assert gap["n"] == 400 and gap["k"] == 10 and gap["mixed_share"] == pytest.approx(399 / 799)
    assert abs(gap["own_neighbour_share"] - gap["mixed_share"]) < 0.08  # mixed: about half are its own


def test_shifted_modality_is_an_island():
    a = _cloud(300, np.eye(16)[0], 0.1, 0)
    b = _cloud(200, np.eye(16)[1], 0.1, 1)  # another direction: the two cones do not touch
    gap = modality_gap(b, np.arange(200) % 10, a, np.arange(300) % 10, k=5)
    centroids = np.linalg.norm(b.mean(0) - a.mean(0))
    assert gap["centroid_distance"] == pytest.approx(centroids, rel=1e-5) and gap["centroid_distance"] > 1.2
    assert gap["own_neighbour_share"] == 1.0 and gap["n"] == 200 and gap["k"] == 5


def test_gap_grows_with_the_shift():
    a = _cloud(300, np.eye(8)[0], 0.4, 0)
    shares, distances = [], []
    for shift in (0.0, 0.3, 1.0):
        b = _cloud(300, np.eye(8)[0] + shift * np.eye(8)[1], 0.4, 1)
        gap = modality_gap(b, np.zeros(300, int), a, np.zeros(300, int))
        shares.append(gap["own_neighbour_share"])
        distances.append(gap["centroid_distance"])
    assert shares == sorted(shares) and distances == sorted(distances) and shares[-1] > shares[0] + 0.2


def test_gap_samples_and_errors():
    a, b = _cloud(50, np.eye(4)[0], 0.3, 0), _cloud(5000, np.eye(4)[0], 0.3, 1)
    gap = modality_gap(b, np.arange(5000) % 10, a, np.arange(50) % 10, max_samples=1000)
    assert gap["n"] == 50  # equal samples of both sides: the share's chance level stays known
    assert "own_neighbour_share" not in modality_gap(b[:1], [0], a, np.arange(50) % 10)
    with pytest.raises(ValueError, match="dimension 4 and 3"):
        modality_gap(b, np.zeros(5000, int), a[:, :3], np.zeros(50, int))
    with pytest.raises(ValueError, match="row 0"):
        modality_gap(np.zeros((3, 4)), [0, 0, 0], a, np.zeros(50, int))
