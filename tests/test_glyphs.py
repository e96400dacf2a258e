"""The writer's variation of the digits world's glyph strokes (training samples of IMU, depth, thermal)."""
from __future__ import annotations

import numpy as np

from mmbind_plugins.digits_world import dataset, sources
from mmbind_plugins.digits_world.glyphs import WRITER, rasterise, styled_strokes, writer_variation


def _box(strokes):
    p = np.concatenate(strokes)
    return p.min(0), p.max(0)


def test_writer_variation_is_seeded_and_changes_the_path():
    base = styled_strokes("futural", 3, np.random.default_rng(0))
    a = writer_variation(base, np.random.default_rng(1))
    b = writer_variation(base, np.random.default_rng(1))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = writer_variation(base, np.random.default_rng(2))
    assert len(a) != len(c) or any(not np.allclose(x, y) for x, y in zip(a, c))
    assert all(s.ndim == 2 and s.shape[1] == 2 and len(s) >= 2 for s in a)


def test_writer_variation_keeps_the_digit_in_place_and_size():
    for seed in range(40):
        digit, font = seed % 10, sources.HERSHEY_TRAIN_FONTS[seed % 5]
        base = styled_strokes(font, digit, np.random.default_rng(seed))
        varied = writer_variation(base, np.random.default_rng(100 + seed))
        (lo0, hi0), (lo1, hi1) = _box(base), _box(varied)
        assert np.all(np.abs((lo1 + hi1) / 2 - (lo0 + hi0) / 2) < 0.15), (font, digit)
        assert 0.75 < (hi1[1] - lo1[1]) / (hi0[1] - lo0[1]) < 1.3, (font, digit)


def test_zero_strength_changes_nothing_but_the_stroke_order():
    base = styled_strokes("timesr", 8, np.random.default_rng(0))
    same = writer_variation(base, np.random.default_rng(0), {k: 0.0 for k in WRITER})
    assert all(np.allclose(x, y) for x, y in zip(base, same)) and len(same) == len(base)


def test_only_training_samples_get_the_variation(monkeypatch):
    """Asked for, it reaches training samples only: the test split keeps the unseen fonts' own designs."""
    calls = []
    import mmbind_plugins.digits_world.glyphs as glyphs

    real = glyphs.writer_variation
    monkeypatch.setattr(glyphs, "writer_variation", lambda *a, **k: calls.append(1) or real(*a, **k))
    options = dataset._options(0, 32, 2, 0, 0, 500, 50, 2, 64, 100, writer_variation=True)
    for modality in ("imu", "depth", "thermal"):
        arrays, records = {}, {"train": {}, "test": {}}
        calls.clear()
        dataset._build_simulated(options, arrays, records, modality)
        assert len(calls) == len(arrays[f"train_{modality}"]) == 20
    calls.clear()
    dataset._build_simulated({**options, "writer_variation": False}, {}, {"train": {}, "test": {}}, "depth")
    assert not calls  # off by default
    assert rasterise(styled_strokes("rowmant", 1, np.random.default_rng(0)), 16, np.random.default_rng(0)).max() > 0
