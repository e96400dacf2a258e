"""fashion-mnist dataset plugin: IDX reading on tiny files written here, plus the real files when installed."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

import mmbind
from mmbind_plugins.datasets.fashion_mnist import (CLASS_NAMES, DEFAULT_ROOT, TEST_TEMPLATES, TRAIN_TEMPLATES,
                                                   load_fashion_mnist, read_idx)


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """The IDX format as the original release writes it: 0, 0, type 0x08, ndim, big-endian sizes."""
    data = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + \
        array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.fixture
def tiny_root(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    for split, n, compress in (("train", 30, True), ("t10k", 20, False)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
        images[:, 0, 0] = labels  # a mark to check that images and labels stay together
        suffix = ".gz" if compress else ""
        write_idx(tmp_path / f"{split}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte{suffix}", labels, compress)
    return tmp_path


def test_read_idx_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for compress in (False, True):
        path = write_idx(tmp_path / f"a{int(compress)}.gz" if compress else tmp_path / "a", array, compress)
        np.testing.assert_array_equal(read_idx(path), array)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"\x01" + b[1:], "not an IDX file"),
    (lambda b: b[:2] + b"\x0d" + b[3:], "type byte 0x0d"),
    (lambda b: b[:-1], "holds 23"),
])
def test_read_idx_rejects_damaged_files(tmp_path, damage, message):
    path = write_idx(tmp_path / "x", np.zeros((2, 3, 4), np.uint8))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(mmbind.InputError, match=message):
        read_idx(path)


def test_loader_splits_pairs_and_prompts(tiny_root):
    data = mmbind.load_dataset("fashion-mnist", root=tiny_root)
    assert data.class_names == CLASS_NAMES and data.simulated == frozenset()
    train, test = data.splits["train"], data.splits["test"]
    assert len(train["image"]) == 30 and len(test["image"]) == 20
    for split in (train, test):
        images = split["image"]
        assert all(img.shape == (28, 28) and img.dtype == np.uint8 for img in images.inputs)
        assert [int(img[0, 0]) for img in images.inputs] == list(images.labels)  # not shuffled apart
        assert images.keys == [str(label) for label in images.labels]
    assert len(train["text"]) == 10 * len(TRAIN_TEMPLATES) and len(test["text"]) == 10 * len(TEST_TEMPLATES)
    assert "a photo of a trouser" in train["text"].inputs
    assert not set(train["text"].inputs) & set(test["text"].inputs)  # test phrasings are unseen
    assert train["text"].keys[train["text"].inputs.index("a photo of a bag")] == "8"


def test_loader_subset_is_balanced_and_seeded(tiny_root):
    a = load_fashion_mnist(tiny_root, train_per_class=2, test_per_class=1, seed=3)
    b = load_fashion_mnist(tiny_root, train_per_class=2, test_per_class=1, seed=3)
    assert np.bincount(a.splits["train"]["image"].labels).tolist() == [2] * 10
    assert len(a.splits["test"]["image"]) == 10
    assert [m["row"] for m in a.splits["train"]["image"].meta] == [m["row"] for m in b.splits["train"]["image"].meta]


def test_loader_errors_name_the_file(tiny_root, tmp_path):
    with pytest.raises(mmbind.InputError, match="no such folder"):
        load_fashion_mnist(tmp_path / "nowhere")
    (tiny_root / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(mmbind.InputError, match="t10k-labels-idx1-ubyte.*dataset-fashion-mnist"):
        load_fashion_mnist(tiny_root)
    write_idx(tiny_root / "t10k-labels-idx1-ubyte", np.zeros(7, np.uint8))
    with pytest.raises(mmbind.InputError, match="7,.*labels for 20 images"):
        load_fashion_mnist(tiny_root)
    with pytest.raises(ValueError, match="train_per_class"):
        load_fashion_mnist(tiny_root, train_per_class=0)


@pytest.mark.skipif(not DEFAULT_ROOT.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_files():
    data = load_fashion_mnist()
    train, test = data.splits["train"]["image"], data.splits["test"]["image"]
    assert (len(train), len(test)) == (60000, 10000)
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert train.inputs[0].shape == (28, 28) and int(train.inputs[0].max()) > 0
