"""The digits-world dataset plugin, on a small build (a few samples per class) in tmp folders."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mmbind
from mmbind_plugins.digits_world import cache, dataset, sources, speech, text
from mmbind_plugins.digits_world.images import COLOURS

SMALL = dict(n_per_class=3, audio_per_class=3, audio_test_per_class=1)
MODALITIES = {"image", "digits", "text", "audio", "imu", "depth", "thermal"}


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    return tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")


@pytest.fixture(scope="module")
def world(roots):
    return dataset.load_digits_world(roots[0], seed=3, **SMALL)


def test_simulated_counts_extend_the_same_samples(tmp_path):
    quick = dict(n_per_class=3, audio_per_class=0, audio_test_per_class=0)
    more = dataset.load_digits_world(tmp_path, seed=3, **quick)
    fewer = dataset.load_digits_world(tmp_path, seed=3, **quick, simulated_per_class=2)
    for modality in ("imu", "depth", "thermal"):
        train, small = more.splits["train"][modality], fewer.splits["train"][modality]
        assert len(small) == 20 and len(train) == 30
        # a sample's random draws come from its index: the smaller set is a prefix of the larger
        assert all(np.array_equal(a, b) for a, b in zip(small.inputs, train.inputs))
        assert len(fewer.splits["test"][modality]) == len(more.splits["test"][modality])
    with pytest.raises(ValueError, match="simulated_per_class"):
        dataset.load_digits_world(tmp_path, simulated_per_class=0)


def _folder(root: Path) -> Path:
    (folder,) = [p for p in root.iterdir() if p.name.startswith("digits-world-")]
    return folder


def _capped(split: str, cap: int) -> int:
    """How many phrases of ``split`` are left with at most ``cap`` per label."""
    labels = [row[1] for row in text.phrases(split)]
    return sum(min(cap, labels.count(label)) for label in set(labels))


def test_sizes_shapes_and_dtypes(world):
    assert set(world.splits) == {"train", "test", "real"}
    assert set(world.splits["train"]) == set(world.splits["test"]) == MODALITIES
    assert set(world.splits["real"]) == {"audio"}
    assert world.class_names == ["zero", "one", "two", "three", "four", "five", "six", "seven",
                                 "eight", "nine"]
    expected = {  # (train, test) sample counts for n_per_class=3
        "image": (3 * 10 * 2, 10), "digits": (30, 10), "imu": (30, 10), "depth": (30, 10),
        "thermal": (30, 10), "audio": (30, 10),
        "text": (_capped("train", 3), _capped("test", 1)),  # n_per_class caps text too
    }
    shapes = {"image": ((32, 32, 3), np.uint8), "digits": ((8, 8), np.float32),
              "imu": ((6, 256), np.float32), "depth": ((32, 32), np.float32),
              "thermal": ((32, 32), np.uint8)}
    for modality, counts in expected.items():
        for split, n in zip(("train", "test"), counts):
            samples = world.splits[split][modality]
            assert len(samples) == n, (split, modality)
            if modality in shapes:
                shape, dtype = shapes[modality]
                assert all(x.shape == shape and x.dtype == dtype for x in samples.inputs)
            # every class present in every split (-1: train phrases naming only a colour)
            assert sorted(set(samples.labels) - {-1}) == list(range(10)), (split, modality)
    for x in world.splits["train"]["audio"].inputs:
        assert x.dtype == np.float32 and x.ndim == 1
        # a fast espeak-ng 'un' (French one) is about 0.19 s after trimming: real, not broken
        assert 0.15 * 16000 < len(x) < 3 * 16000 and 0.05 < np.abs(x).max() <= 1.0
    assert all(isinstance(t, str) and t for t in world.splits["test"]["text"].inputs)
    digits = np.stack(world.splits["train"]["digits"].inputs)
    assert digits.min() == 0 and digits.max() == 16  # the real sklearn scans, not rescaled


def test_keys_agree_with_labels_and_colours_only_on_images_and_text(world):
    for split, modalities in world.splits.items():
        for modality, s in modalities.items():
            for key, label, meta in zip(s.keys, s.labels, s.meta):
                digit, _, colour = key.partition("/")
                if digit == "*":  # a phrase naming only a colour pairs with every digit in it
                    assert modality == "text" and split == "train" and label == -1
                    assert colour in COLOURS and colour in key and meta["colour"] == colour
                    continue
                assert digit == str(label) and 0 <= label <= 9
                if modality == "image":
                    assert colour in COLOURS and meta["colour"] == colour
                elif modality == "text":
                    assert colour == meta.get("colour", "")
                else:
                    assert colour == "", (modality, key)
    train_text = world.splits["train"]["text"]
    coloured = [(t, k) for t, k in zip(train_text.inputs, train_text.keys) if "/" in k]
    assert coloured and len(coloured) < len(train_text)
    for phrase, key in coloured:
        assert key.split("/")[1] in phrase.split()


def test_image_colour_matches_its_key(world):
    images = world.splits["train"]["image"]
    for x, meta in zip(images.inputs, images.meta):
        bright = x.reshape(-1, 3).astype(float)
        stroke = bright[bright.sum(1) >= np.percentile(bright.sum(1), 95)].mean(0)
        target = np.array(COLOURS[meta["colour"]], float)
        # the stroke colour is nearer its own colour's direction than any other colour's
        cos = {c: stroke @ np.array(v) / np.linalg.norm(stroke) / np.linalg.norm(v)
               for c, v in COLOURS.items()}
        assert max(cos, key=cos.get) == meta["colour"], (meta, stroke, target)


def test_real_split_is_the_60_asterisk_recordings(world):
    real = world.splits["real"]["audio"]
    assert len(real) == 60
    voices = {m["voice"] for m in real.meta}
    assert voices == set(speech.REAL_VOICES)
    for path, label, meta in zip(real.inputs, real.labels, real.meta):
        p = Path(path)
        assert p.is_file() and p.parent.name == "digits" and p.stem == str(label)
        assert p.parent.parent.name == meta["voice"]
        assert str(p).startswith("/usr/share/asterisk/sounds/")
        assert meta["synthetic"] is False and meta["language"] == speech.REAL_VOICES[meta["voice"]]
    # training audio is synthetic and never one of the real files
    for split in ("train", "test"):
        assert all(m["synthetic"] for m in world.splits[split]["audio"].meta)


def test_splits_do_not_leak(world):
    tr, te = world.splits["train"], world.splits["test"]
    rows = lambda s: {m["source"] for m in s.meta}  # noqa: E731
    assert not rows(tr["image"]) & rows(te["image"])
    assert not rows(tr["digits"]) & rows(te["digits"])
    for m in ("imu", "depth", "thermal"):
        assert {x["font"] for x in tr[m].meta} <= set(sources.HERSHEY_TRAIN_FONTS)
        assert {x["font"] for x in te[m].meta} <= set(sources.HERSHEY_TEST_FONTS)
    voices = lambda s: {m["voice"].split("+")[-1] for m in s.meta}  # noqa: E731
    assert not voices(tr["audio"]) & voices(te["audio"])
    templates = lambda s: {(m["language"], m["template"]) for m in s.meta}  # noqa: E731
    assert not templates(tr["text"]) & templates(te["text"])
    # every digit word of every language appears in the training phrases of a full world ...
    train_words = set(" ".join(row[0] for row in text.phrases("train")).split())
    for words in text.WORDS.values():
        assert set(words) <= train_words
    # ... and a world capped by n_per_class spreads its few phrases of a digit over languages
    for digit in range(10):
        assert len({m["language"] for m, label in zip(tr["text"].meta, tr["text"].labels) if label == digit}) >= 2


def test_simulated_modalities_are_named(world):
    assert world.simulated == frozenset({"imu", "depth", "thermal"})
    for m in world.simulated:
        assert all(meta["simulated"] for meta in world.splits["train"][m].meta)
    assert "simulated" in world.description


def test_simulated_physics(world):
    imu = np.stack(world.splits["train"]["imu"].inputs)
    # writing accelerations are small next to gravity: |acc| stays near 9.81 m/s^2 mostly
    norm = np.median(np.linalg.norm(imu[:, :3], axis=1), axis=1)
    assert np.all(np.abs(norm - 9.81) < 0.7), norm
    assert np.all(imu[:, 3:].std(2).max(1) > 0.005)  # the gyroscope sees the writing
    depth = np.stack(world.splits["train"]["depth"].inputs)
    valid = depth > 0
    assert 0.7 < valid.mean() < 1.0  # some missing pixels, most valid
    assert depth[valid].min() > 0.8 and depth[valid].max() < 4.5
    thermal = np.stack(world.splits["train"]["thermal"].inputs).astype(float)
    # a bright (hot) thin digit on a darker background
    assert np.all(np.percentile(thermal, 99, axis=(1, 2)) > np.median(thermal, axis=(1, 2)) + 60)


def test_telephone_clips_are_band_limited(world):
    audio = world.splits["train"]["audio"]
    kinds = {m["channel"]["telephone"] for m in audio.meta}
    assert kinds == {True, False}  # a share of each
    for x, m in zip(audio.inputs, audio.meta):
        if m["channel"]["telephone"]:
            spectrum = np.abs(np.fft.rfft(x)) ** 2
            freqs = np.fft.rfftfreq(len(x), 1 / 16000)
            assert spectrum[freqs > 4200].sum() < 0.01 * spectrum.sum()


def test_rebuild_is_identical_byte_for_byte(world, roots):
    dataset.load_digits_world(roots[1], seed=3, **SMALL)
    a, b = _folder(roots[0]), _folder(roots[1])
    assert a.name == b.name
    files = sorted(p.name for p in a.glob("*.npy"))
    assert files == sorted(p.name for p in b.glob("*.npy")) and len(files) >= 12
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ma, mb = (json.loads((f / "manifest.json").read_text()) for f in (a, b))
    ma.pop("build_seconds"), mb.pop("build_seconds")
    assert ma == mb


def test_second_call_uses_the_cache(world, roots):
    folder = _folder(roots[0])
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    count = dataset.build_count
    again = dataset.load_digits_world(roots[0], seed=3, **SMALL)
    assert dataset.build_count == count
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.splits["test"]["depth"].inputs[0],
                                  world.splits["test"]["depth"].inputs[0])
    assert not [p for p in roots[0].iterdir() if p.name.startswith(".")]  # no temp folders


def test_other_seed_differs(roots):
    other = dataset.load_digits_world(roots[1], seed=4, n_per_class=1, audio_per_class=0,
                                      audio_test_per_class=0)
    base = dataset.load_digits_world(roots[1], seed=3, **SMALL)
    assert len({p.name for p in roots[1].iterdir()}) == 2
    assert not np.array_equal(other.splits["train"]["thermal"].inputs[0],
                              base.splits["train"]["thermal"].inputs[0])
    assert len(other.splits["train"]["audio"]) == 0 and len(other.splits["real"]["audio"]) == 60


def test_killed_build_leaves_no_cache(tmp_path, monkeypatch):
    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if the build were stopped after writing every array

    monkeypatch.setattr(cache.json, "dump", killed)
    with pytest.raises(KeyboardInterrupt):
        dataset.load_digits_world(tmp_path, n_per_class=1, audio_per_class=0,
                                  audio_test_per_class=0)
    assert list(tmp_path.iterdir()) == []


def test_damaged_cache_names_the_file(tmp_path):
    dataset.load_digits_world(tmp_path, n_per_class=1, audio_per_class=0, audio_test_per_class=0)
    folder = _folder(tmp_path)
    (folder / "test_depth.npy").write_bytes(b"not an array")
    with pytest.raises(mmbind.InputError, match="test_depth.npy"):
        dataset.load_digits_world(tmp_path, n_per_class=1, audio_per_class=0,
                                  audio_test_per_class=0)


@pytest.mark.parametrize("option, value", [("size", 4), ("n_per_class", 0),
                                           ("colours_per_image", 9), ("imu_rate", 7),
                                           ("audio_per_class", -1)])
def test_bad_options_name_the_option(tmp_path, option, value):
    with pytest.raises(ValueError, match=option):
        dataset.load_digits_world(tmp_path, **{option: value})
    assert list(tmp_path.iterdir()) == []


def test_registered_and_light_to_import():
    spec = mmbind.get_dataset("digits-world")
    assert set(spec.modalities) == MODALITIES
    code = ("import sys, mmbind_plugins.digits_world as m; "
            "print(sorted(k for k in ('torch', 'sklearn', 'skimage', 'scipy', 'torchaudio') "
            "if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=dict(os.environ))
    assert out.stdout.strip() == "[]"


# issue 14 item 1: n_per_class caps every per-class count, as docs/digits-world.md says.
def test_n_per_class_caps_test_audio_and_text():
    options = dataset._options(0, 32, 5, 350, 50, 500, 50, 2, 256, 100)
    assert options["counts"]["audio"] == (5, 1) and options["counts"]["text"] == (5, 1)
    assert options["counts"]["simulated"] == (5, 1) and options["counts"]["image"] == (5, 1)
    records = {"train": {}, "test": {}}
    dataset._build_text(options, {}, records)
    for split, cap in (("train", 5), ("test", 1)):
        labels = records[split]["text"]["labels"]
        assert max(labels.count(label) for label in set(labels)) == cap
        assert set(range(10)) <= set(labels)
    languages = {meta["language"] for meta in records["train"]["text"]["meta"]}
    assert len(languages) >= 3  # spread over the languages, not the first template's five
    full = dataset._options(0, 32, None, 350, 50, 500, 50, 2, 256, 100)
    assert "text" not in full["counts"]  # the full world keeps its cache folder


def _documented_options() -> list[str]:
    """Every option named in the options table of docs/digits-world.md."""
    import re

    doc = (Path(__file__).parent.parent / "docs" / "digits-world.md").read_text()
    table = doc.split("## Options", 1)[1].split("\n## ", 1)[0]
    return [name for cell in re.findall(r"^\| (`[^|]*`) \|", table, flags=re.M)
            for name in re.findall(r"`(\w+)`", cell)]


def test_every_documented_option_builds_through_a_recipe(tmp_path):
    """The registered factory is the builder: every documented option passes `[data] options`
    (it failed for simulated_per_class before) and builds a tiny world."""
    import tomllib

    from mmbind.recipe import parse_recipe

    values = {"root": str(tmp_path), "seed": 1, "size": 16, "n_per_class": 2, "audio_per_class": 1,
              "audio_test_per_class": 1, "simulated_per_class": 1, "simulated_test_per_class": 1,
              "colours_per_image": 1, "imu_length": 32, "imu_rate": 50, "writer_variation": True, "rebuild": True,
              "workers": 1}
    assert sorted(_documented_options()) == sorted(values)
    options = ", ".join(f"{k} = {json.dumps(v)}" for k, v in values.items())
    recipe = parse_recipe(tomllib.loads(f"""
name = "tiny"
[data]
dataset = "digits-world"
options = {{ {options} }}
[anchor]
modality = "image"
encoder = "image-digits-cnn"
[modalities.imu]
"""), "tiny.toml")
    data = recipe.load_data()
    imu = data.splits["train"]["imu"]
    assert len(imu) == 10 and imu.inputs[0].shape == (6, 32)  # simulated_per_class=1, imu_length=32
    assert data.splits["train"]["image"].inputs[0].shape == (16, 16, 3)
    assert len(data.splits["train"]["audio"]) == 10 and len(data.splits["test"]["audio"]) == 10


def test_an_unknown_option_is_refused_with_the_closest_name():
    import tomllib

    from mmbind.recipe import RecipeError, parse_recipe

    with pytest.raises(RecipeError, match=r"\[data\] options: unknown option 'simulated_per_clas' of dataset "
                                          r"'digits-world'; did you mean 'simulated_per_class'\?"):
        parse_recipe(tomllib.loads("""
name = "tiny"
[data]
dataset = "digits-world"
options = { simulated_per_clas = 3 }
[anchor]
modality = "image"
[modalities.imu]
"""), "tiny.toml")
