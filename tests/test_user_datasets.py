"""Dataset loaders for user data layouts, each on a tiny fixture written here in exactly that
layout: paired folders, manifests, ESC-50, LLVIP, NYU Depth v2 (.mat = HDF5), SUN RGB-D, IMU
windows. Audio fixtures are real recordings (Debian asterisk prompts), photos come from
scikit-image; the IMU windows, depth maps and thermal frames of the fixtures are made up."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

import mmbind
from mmbind_plugins.datasets.sunrgbd import decode_depth

DIGITS = Path("/usr/share/asterisk/sounds/en_US_f_Allison/digits")
pytestmark = pytest.mark.skipif(not DIGITS.is_dir(), reason="needs Debian asterisk-core-sounds-en-wav")
CHANNELS = "acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z"


def write_imu(path: Path, seed: int, steps: int = 40) -> np.ndarray:
    """A made-up (6, steps) window as a CSV with the channel header; returns the array."""
    array = np.random.default_rng(seed).normal(size=(6, steps)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, array.T, delimiter=",", header=CHANNELS, comments="", fmt="%.6f")
    return array


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def split_sizes(data: mmbind.BindingData) -> dict:
    return {s: {m: len(v) for m, v in sorted(split.items())} for s, split in sorted(data.splits.items())}


# ---------------------------------------------------------------- paired-folder

@pytest.fixture
def paired_root(tmp_path) -> Path:
    """root/audio/<stem>.wav (real spoken digits) + root/imu/<stem>.csv, 10 stems, labels.csv,
    and one IMU file without an audio partner."""
    root = tmp_path / "paired"
    (root / "audio").mkdir(parents=True)
    rows = ["stem,label"]
    for i in range(10):
        stem = f"rec{i:02d}"
        shutil.copy(DIGITS / f"{i}.wav", root / "audio" / f"{stem}.wav")
        write_imu(root / "imu" / f"{stem}.csv", seed=i)
        rows.append(f"{stem},{'odd' if i % 2 else 'even'}")
    write_imu(root / "imu" / "orphan.csv", seed=99)
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    (root / "notes").mkdir()  # a folder that is no modality is ignored
    return root


def test_paired_folder_pairs_by_stem(paired_root):
    with pytest.warns(RuntimeWarning, match=r"1 file\(s\) have no file with the same stem.*orphan\.csv"):
        data = mmbind.load_dataset("paired-folder", root=str(paired_root), test_fraction=0.2, seed=1)
    assert data.class_names == ["even", "odd"]
    # 10 pairs, stratified: one of the five per label goes to test.
    assert split_sizes(data) == {"test": {"audio": 2, "imu": 2}, "train": {"audio": 8, "imu": 8}}
    for split in data.splits.values():
        audio, imu = split["audio"], split["imu"]
        assert list(audio.keys) == list(imu.keys)  # the same stems, in the same order
        for key, a, b, label in zip(audio.keys, audio.inputs, imu.inputs, audio.labels):
            assert Path(a) == paired_root / "audio" / f"{key}.wav"
            assert Path(b) == paired_root / "imu" / f"{key}.csv"
            assert label == int(key[-1]) % 2  # even -> 0, odd -> 1
    assert sorted(data.splits["test"]["audio"].labels) == [0, 1]
    with pytest.warns(RuntimeWarning, match="orphan"):
        again = mmbind.load_dataset("paired-folder", root=paired_root, test_fraction=0.2, seed=1)
    assert again.splits["test"]["imu"].keys == data.splits["test"]["imu"].keys  # seeded: reproducible


def test_paired_folder_split_folders(tmp_path):
    root = tmp_path / "split"
    for split, digits in (("train", range(0, 6)), ("test", range(6, 9))):
        (root / split / "audio").mkdir(parents=True)
        for i in digits:
            shutil.copy(DIGITS / f"{i}.wav", root / split / "audio" / f"d{i}.wav")
            write_imu(root / split / "imu" / f"d{i}.csv", seed=i)
    data = mmbind.load_dataset("paired-folder", root=root)
    assert split_sizes(data) == {"test": {"audio": 3, "imu": 3}, "train": {"audio": 6, "imu": 6}}
    assert data.splits["test"]["audio"].keys == ["d6", "d7", "d8"]
    assert data.splits["train"]["imu"].labels == [-1] * 6  # no labels.csv
    with pytest.raises(mmbind.InputError, match=r"no folder for modality depth"):
        mmbind.load_dataset("paired-folder", root=root, modalities=["audio", "depth"])


def test_paired_folder_bad_sample(paired_root):
    bad = paired_root / "audio" / "rec03.wav"
    truncate(bad)
    with pytest.warns(RuntimeWarning, match="orphan"):
        with pytest.raises(mmbind.InputError, match=r"rec03\.wav.*truncated WAV.*skip_bad=True"):
            mmbind.load_dataset("paired-folder", root=paired_root)
    with pytest.warns(RuntimeWarning) as caught:
        data = mmbind.load_dataset("paired-folder", root=paired_root, skip_bad=True)
    skips = [str(w.message) for w in caught if "skipped" in str(w.message)]
    assert len(skips) == 1 and "skipped 1 bad sample" in skips[0] and "rec03.wav" in skips[0]
    keys = [k for split in data.splits.values() for k in split["imu"].keys]
    assert len(keys) == 9 and "rec03" not in keys  # its IMU half had nothing left to pair with


# ---------------------------------------------------------------- manifest

def test_manifest_csv_and_jsonl(tmp_path):
    (tmp_path / "clips").mkdir()
    rows = ["key,audio,imu,label,split,speaker"]
    for i in range(6):
        shutil.copy(DIGITS / f"{i}.wav", tmp_path / "clips" / f"{i}.wav")
        write_imu(tmp_path / "motion" / f"{i}.csv", seed=i)
        rows.append(f"k{i},clips/{i}.wav,motion/{i}.csv,{i % 3},{'test' if i >= 4 else 'train'},allison")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    data = mmbind.load_dataset("manifest", path=tmp_path / "pairs.csv")
    assert split_sizes(data) == {"test": {"audio": 2, "imu": 2}, "train": {"audio": 4, "imu": 4}}
    assert data.class_names == ["0", "1", "2"]  # integer labels keep their value
    test = data.splits["test"]
    assert test["audio"].keys == ["k4", "k5"] and test["audio"].labels == [1, 2]
    assert test["imu"].inputs[0] == tmp_path / "motion" / "4.csv"  # relative to the manifest
    assert test["audio"].meta[0] == {"speaker": "allison"}

    lines = [json.dumps({"audio": f"clips/{i}.wav", "imu": f"motion/{i}.csv", "label": name})
             for i, name in enumerate(["cat", "dog", "cat", "dog", "cat"])]
    lines.append(json.dumps({"audio": "clips/5.wav", "label": "dog"}))  # one modality only
    (tmp_path / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(mmbind.InputError, match=r"pairs\.jsonl: row 6 has 1 of the modality columns"):
        mmbind.load_dataset("manifest", path=tmp_path / "pairs.jsonl")
    (tmp_path / "pairs.jsonl").write_text("\n".join(lines[:5]) + "\n")
    data = mmbind.load_dataset("manifest", path=tmp_path / "pairs.jsonl", test_fraction=0.4)
    assert data.class_names == ["cat", "dog"]
    assert split_sizes(data) == {"test": {"audio": 2, "imu": 2}, "train": {"audio": 3, "imu": 3}}
    assert sorted(data.splits["test"]["audio"].labels) == [0, 1]  # stratified: one cat, one dog


def test_manifest_errors_and_skip_bad(tmp_path):
    shutil.copy(DIGITS / "1.wav", tmp_path / "a.wav")
    write_imu(tmp_path / "a.csv", seed=1)
    (tmp_path / "dup.csv").write_text("key,audio,imu\nx,a.wav,a.csv\nx,a.wav,a.csv\n")
    with pytest.raises(mmbind.InputError, match=r"dup\.csv: row 2: key 'x' appears twice"):
        mmbind.load_dataset("manifest", path=tmp_path / "dup.csv")
    (tmp_path / "none.csv").write_text("left,right\na.wav,a.csv\n")
    with pytest.raises(mmbind.InputError, match=r"none\.csv: columns \['left', 'right'\] name no registered modality"):
        mmbind.load_dataset("manifest", path=tmp_path / "none.csv")
    (tmp_path / "missing.csv").write_text("audio,imu\na.wav,a.csv\nb.wav,a.csv\n")
    with pytest.raises(mmbind.InputError, match=r"b\.wav: no such audio file"):
        mmbind.load_dataset("manifest", path=tmp_path / "missing.csv")
    with pytest.warns(RuntimeWarning, match=r"skipped 1 bad sample.*b\.wav"):
        data = mmbind.load_dataset("manifest", path=tmp_path / "missing.csv", skip_bad=True, test_fraction=0)
    assert split_sizes(data) == {"train": {"audio": 1, "imu": 1}}


# ---------------------------------------------------------------- esc50

@pytest.fixture
def esc50_root(tmp_path) -> Path:
    """ESC-50 layout: 5 folds x 2 classes x 2 clips (real recordings stand in for the sounds)."""
    root = tmp_path / "ESC-50-master"
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    n = 0
    for fold in range(1, 6):
        for target, category, esc10 in ((0, "dog", "True"), (20, "crying_baby", "False")):
            for take in "AB":
                name = f"{fold}-{1000 + n}-{take}-{target}.wav"
                shutil.copy(DIGITS / f"{n % 10}.wav", root / "audio" / name)
                rows.append(f"{name},{fold},{target},{category},{esc10},{1000 + n},{take}")
                n += 1
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    return root


def test_esc50_folds_and_class_names(esc50_root):
    data = mmbind.load_dataset("esc50", root=esc50_root)
    assert data.class_names == ["dog", "crying baby"]
    assert split_sizes(data) == {"test": {"audio": 4}, "train": {"audio": 16}}
    test = data.splits["test"]["audio"]
    assert all(m["fold"] == 5 for m in test.meta) and sorted(test.labels) == [0, 0, 1, 1]
    assert all(Path(p).parent == esc50_root / "audio" and Path(p).stem == k for p, k in zip(test.inputs, test.keys))
    fold1 = mmbind.load_dataset("esc50", root=esc50_root, test_fold=1)
    assert all(m["fold"] == 1 for m in fold1.splits["test"]["audio"].meta)
    everything = mmbind.load_dataset("esc50", root=esc50_root, test_fold=None)
    assert split_sizes(everything) == {"test": {"audio": 20}}
    esc10 = mmbind.load_dataset("esc50", root=esc50_root, esc10=True)
    assert esc10.class_names == ["dog"] and split_sizes(esc10) == {"test": {"audio": 2}, "train": {"audio": 8}}
    with pytest.raises(mmbind.InputError, match="test_fold=6"):
        mmbind.load_dataset("esc50", root=esc50_root, test_fold=6)


def test_esc50_bad_clip(esc50_root):
    victim = sorted((esc50_root / "audio").glob("3-*.wav"))[0]
    victim.write_bytes(b"")
    with pytest.raises(mmbind.InputError, match=rf"{victim.name}: the file is empty"):
        mmbind.load_dataset("esc50", root=esc50_root)
    with pytest.warns(RuntimeWarning, match=rf"skipped 1 bad sample.*{victim.name}"):
        data = mmbind.load_dataset("esc50", root=esc50_root, skip_bad=True)
    assert split_sizes(data) == {"test": {"audio": 4}, "train": {"audio": 15}}


# ---------------------------------------------------------------- imu-windows

def test_imu_windows_class_folders(tmp_path):
    expected = {}
    for cls in ("walk", "run"):
        for i in range(5):
            expected[f"{cls}/w{i}"] = write_imu(tmp_path / cls / f"w{i}.csv", seed=hash((cls, i)) % 1000)
    np.save(tmp_path / "run" / "w5.npy", np.ones((100, 6), np.float32))  # .npy windows too
    data = mmbind.load_dataset("imu-windows", path=tmp_path, test_fraction=0.2)
    assert data.class_names == ["run", "walk"]
    assert split_sizes(data) == {"test": {"imu": 2}, "train": {"imu": 9}}
    samples = data.splits["train"]["imu"]
    for key, path, label in zip(samples.keys, samples.inputs, samples.labels):
        assert data.class_names[label] == key.split("/")[0]
        if key in expected:
            np.testing.assert_allclose(mmbind.get_modality("imu").load(path), expected[key], atol=1e-5)


def test_imu_windows_long_csv(tmp_path):
    lines = [f"window,t,{CHANNELS},label,split"]
    for w, (label, split) in enumerate([("wave", "train"), ("wave", "train"), ("circle", "test")]):
        for t in range(20 + w):
            lines.append(f"{w},{t}," + ",".join(str(w * 100 + c * 10 + t) for c in range(6)) + f",{label},{split}")
    (tmp_path / "windows.csv").write_text("\n".join(lines) + "\n")
    data = mmbind.load_dataset("imu-windows", path=tmp_path / "windows.csv")
    assert data.class_names == ["circle", "wave"]
    assert split_sizes(data) == {"test": {"imu": 1}, "train": {"imu": 2}}
    window = data.splits["test"]["imu"].inputs[0]
    assert window.shape == (6, 22) and window[3, 5] == 200 + 30 + 5  # channel gyro_x, time 5
    lines[5] = lines[5].replace(",wave,", ",circle,")
    (tmp_path / "relabel.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(mmbind.InputError, match=r"relabel\.csv: line 6: window '0' changes label"):
        mmbind.load_dataset("imu-windows", path=tmp_path / "relabel.csv")
    cells = lines[8].split(",")  # window 0, t = 7
    cells[2] = "nan"  # its acc_x
    lines[8] = ",".join(cells)
    (tmp_path / "nan.csv").write_text("\n".join(lines).replace(",circle,", ",wave,") + "\n")
    with pytest.raises(mmbind.InputError, match=r"nan\.csv window '0' \(from line 2\).*NaN"):
        mmbind.load_dataset("imu-windows", path=tmp_path / "nan.csv")
    with pytest.warns(RuntimeWarning, match=r"skipped 1 bad sample.*nan\.csv window '0'"):
        data = mmbind.load_dataset("imu-windows", path=tmp_path / "nan.csv", skip_bad=True)
    assert split_sizes(data) == {"test": {"imu": 1}, "train": {"imu": 1}}


def test_imu_windows_ts_file(tmp_path):
    def series(seed: int) -> str:
        values = np.random.default_rng(seed).normal(size=(6, 12)).round(3)
        return ":".join(",".join(map(str, row)) for row in values)

    header = "#made-up\n@problemName Toy\n@timeStamps false\n@univariate false\n@dimensions 6\n" \
             "@classLabel true up down\n@data\n"
    (tmp_path / "Toy_TRAIN.ts").write_text(header + "".join(f"{series(i)}:{'up' if i % 2 else 'down'}\n" for i in range(4)))
    (tmp_path / "Toy_TEST.ts").write_text(header + f"{series(9)}:up\n")
    data = mmbind.load_dataset("imu-windows", path=tmp_path / "Toy_TEST.ts")  # the sibling is read too
    assert data.class_names == ["up", "down"]  # declared order
    assert split_sizes(data) == {"test": {"imu": 1}, "train": {"imu": 4}}
    assert data.splits["train"]["imu"].labels == [1, 0, 1, 0]
    np.testing.assert_allclose(data.splits["test"]["imu"].inputs[0],
                               np.random.default_rng(9).normal(size=(6, 12)).round(3), atol=1e-6)
    (tmp_path / "Bad_TRAIN.ts").write_text(header.replace("6\n@class", "5\n@class") +
                                           ":".join(["1,2,3"] * 5) + ":up\n")
    with pytest.raises(mmbind.InputError, match=r"Bad_TRAIN\.ts series 0: .*shape \(5, 3\)"):
        mmbind.load_dataset("imu-windows", path=tmp_path / "Bad_TRAIN.ts")


# ---------------------------------------------------------------- llvip

def photo(seed: int, size: tuple[int, int] = (40, 32)) -> Image.Image:
    """A crop of a real scikit-image photo."""
    from skimage import data as skdata

    rgb = skdata.astronaut()
    y, x = 10 * seed, 12 * seed
    return Image.fromarray(rgb[y:y + size[1], x:x + size[0]])


def test_llvip_pairs_visible_and_infrared(tmp_path):
    root = tmp_path / "LLVIP"
    layout = {"train": ["010001", "010002", "010003"], "test": ["190001"]}
    for split, stems in layout.items():
        for side in ("visible", "infrared"):
            (root / side / split).mkdir(parents=True)
        for i, stem in enumerate(stems):
            image = photo(i)
            image.save(root / "visible" / split / f"{stem}.jpg")
            image.convert("L").save(root / "infrared" / split / f"{stem}.jpg")  # stands in for a thermal frame
    photo(5).save(root / "visible" / "train" / "010004.jpg")  # no infrared partner
    with pytest.warns(RuntimeWarning, match=r"1 image\(s\) without a partner.*010004\.jpg"):
        data = mmbind.load_dataset("llvip", root=root)
    assert split_sizes(data) == {"test": {"image": 1, "thermal": 1}, "train": {"image": 3, "thermal": 3}}
    train = data.splits["train"]
    assert train["image"].keys == train["thermal"].keys == ["010001", "010002", "010003"]
    for key, visible, infrared in zip(train["image"].keys, train["image"].inputs, train["thermal"].inputs):
        assert Path(visible) == root / "visible" / "train" / f"{key}.jpg"
        assert Path(infrared) == root / "infrared" / "train" / f"{key}.jpg"
    (root / "infrared" / "train" / "010002.jpg").write_bytes(b"not a jpeg")
    with pytest.warns(RuntimeWarning):
        with pytest.raises(mmbind.InputError, match=r"010002\.jpg"):
            mmbind.load_dataset("llvip", root=root)
    with pytest.warns(RuntimeWarning) as caught:
        data = mmbind.load_dataset("llvip", root=root, skip_bad=True)
    assert any("skipped 1 bad sample" in str(w.message) and "010002.jpg" in str(w.message) for w in caught)
    assert data.splits["train"]["image"].keys == ["010001", "010003"]


# ---------------------------------------------------------------- nyu-depth-v2

SCENE_TYPES = ["kitchen", "bedroom", "kitchen", "study", "bedroom"]
H, W = 4, 6


def nyu_frame(i: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame i as the user sees it: (H, W, 3) uint8 RGB and (H, W) metres, with every pixel
    distinct so that a transposition or flip shows."""
    r, c = np.mgrid[0:H, 0:W]
    image = np.stack([10 * r + c + 100 * ch + i for ch in range(3)], axis=-1).astype(np.uint8)
    depth = (1.0 + r + c / 10 + i / 100).astype(np.float32)
    return image, depth


def write_nyu(path: Path) -> None:
    """The labelled .mat's structure: a MATLAB v7.3 (HDF5) file with a 512-byte user block,
    axes reversed (images (N, 3, W, H), depths (N, W, H)) and the scene names as object
    references to uint16 char arrays in #refs#."""
    n = len(SCENE_TYPES)
    with h5py.File(path, "w", userblock_size=512) as f:
        frames = [nyu_frame(i) for i in range(n)]
        f["images"] = np.stack([img.transpose(2, 1, 0) for img, _ in frames])
        f["depths"] = np.stack([depth.T for _, depth in frames])
        f["labels"] = np.zeros((n, W, H), np.uint16)
        refs_group = f.create_group("#refs#")
        for name, values in (("sceneTypes", SCENE_TYPES), ("scenes", [f"{t}_{i:04d}" for i, t in enumerate(SCENE_TYPES)])):
            refs = []
            for i, text in enumerate(values):
                chars = refs_group.create_dataset(f"{name}{i}", data=np.array([[ord(ch)] for ch in text], np.uint16))
                refs.append(chars.ref)
            f.create_dataset(name, data=np.array([refs], dtype=h5py.ref_dtype))  # (1, N) as MATLAB writes it
    with open(path, "r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .")


def test_nyu_depth_v2_orientation_and_scenes(tmp_path):
    path = tmp_path / "nyu_depth_v2_labeled.mat"
    write_nyu(path)
    data = mmbind.load_dataset("nyu-depth-v2", path=tmp_path, test_fraction=0.4, seed=0)
    assert data.class_names == ["bedroom", "kitchen", "study"]
    samples = {k: (img, dep, label, meta) for split in data.splits.values()
               for k, img, dep, label, meta in zip(split["image"].keys, split["image"].inputs,
                                                   split["depth"].inputs, split["image"].labels, split["image"].meta)}
    assert sorted(samples) == ["0001", "0002", "0003", "0004", "0005"]
    for key, (image, depth, label, meta) in samples.items():
        i = int(key) - 1
        want_image, want_depth = nyu_frame(i)
        assert image.shape == (H, W, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(image, want_image)  # rows are image rows after the transpose
        assert depth.shape == (H, W) and depth.dtype == np.float32
        np.testing.assert_allclose(depth, want_depth)
        assert data.class_names[label] == SCENE_TYPES[i] and meta["scene"] == f"{SCENE_TYPES[i]}_{i:04d}"
    nyu10 = mmbind.load_dataset("nyu-depth-v2", path=path, classes="nyu10", check=False)
    assert len(nyu10.class_names) == 10 and nyu10.class_names[-1] == "others"
    labels = {k: nyu10.class_names[lab] for s in nyu10.splits.values() for k, lab in zip(s["depth"].keys, s["depth"].labels)}
    assert labels == {"0001": "kitchen", "0002": "bedroom", "0003": "kitchen", "0004": "others", "0005": "bedroom"}


def test_nyu_official_split_and_errors(tmp_path):
    from scipy.io import savemat

    path = tmp_path / "nyu_depth_v2_labeled.mat"
    write_nyu(path)
    savemat(tmp_path / "splits.mat", {"trainNdxs": np.array([[1], [2], [4]]), "testNdxs": np.array([[3], [5]])})
    data = mmbind.load_dataset("nyu-depth-v2", path=path, splits_file=tmp_path / "splits.mat")
    assert data.splits["train"]["image"].keys == ["0001", "0002", "0004"]
    assert data.splits["test"]["depth"].keys == ["0003", "0005"]
    savemat(tmp_path / "short.mat", {"trainNdxs": np.array([[1]]), "testNdxs": np.array([[2]])})
    with pytest.raises(mmbind.InputError, match=r"short\.mat: 3 frames are in neither"):
        mmbind.load_dataset("nyu-depth-v2", path=path, splits_file=tmp_path / "short.mat")
    with h5py.File(tmp_path / "broken.mat", "w") as f:
        f["images"] = np.zeros((2, 3, W, H), np.uint8)
        f["depths"] = np.zeros((2, H, W), np.float32)  # not transposed like the real file
        f["sceneTypes"] = np.zeros((1, 2))
    with pytest.raises(mmbind.InputError, match=r"broken\.mat: 'depths' has shape \(2, 4, 6\); expected \(N, W, H\)"):
        mmbind.load_dataset("nyu-depth-v2", path=tmp_path / "broken.mat")


# ---------------------------------------------------------------- sun-rgbd

def encode_sun(millimetres: np.ndarray) -> np.ndarray:
    """What SUN RGB-D's PNGs hold: the millimetre value rotated left by 3 bits (16-bit)."""
    mm = millimetres.astype(np.uint32)
    return (((mm << 3) | (mm >> 13)) & 0xFFFF).astype(np.uint16)


def test_sun_depth_decoding_of_known_values():
    raw = np.array([[9872, 14465, 0]], np.uint16)  # 1234 mm; 10000 mm (rotated: bit 13 wraps to bit 0); none
    np.testing.assert_allclose(decode_depth(raw, max_depth=None), [[1.234, 10.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(decode_depth(raw), [[1.234, 8.0, 0.0]], rtol=1e-6)  # capped at 8 m as the toolbox does
    mm = np.arange(0, 65536, 7, dtype=np.uint16)
    np.testing.assert_array_equal(decode_depth(encode_sun(mm), None), mm.astype(np.float32) / 1000)


def write_sun_scene(folder: Path, name: str, scene: str, mm: np.ndarray, refined: bool, seed: int) -> None:
    (folder / "image").mkdir(parents=True)
    photo(seed, (mm.shape[1], mm.shape[0])).save(folder / "image" / f"{name}.jpg")
    (folder / "depth").mkdir()
    Image.fromarray(encode_sun(mm // 2)).save(folder / "depth" / f"{name}.png")  # raw sensor depth differs
    if refined:
        (folder / "depth_bfx").mkdir()
        Image.fromarray(encode_sun(mm)).save(folder / "depth_bfx" / f"{name}.png")
    (folder / "scene.txt").write_text(scene)


def test_sun_rgbd_layout(tmp_path):
    root = tmp_path / "SUNRGBD"
    mm = np.array([[1234, 2500, 0, 9000]] * 3, np.uint16)
    scenes = {
        "kv1/NYUdata/NYU0001": ("NYU0001", "bedroom", True),
        "kv1/NYUdata/NYU0002": ("NYU0002", "kitchen", True),
        "kv2/kinect2data/000002_2014-05-26_rgbf000103-resize": ("0000103", "bedroom", True),
        "realsense/lg/2014_10_24-14_23_38-1311000073": ("0000001", "kitchen", False),  # depth/ only
        "xtion/xtion_align_data/2014_12_01/000001": ("0000001", "garage", True),  # not a SUN19 class
    }
    for i, (rel, (name, scene, refined)) in enumerate(scenes.items()):
        write_sun_scene(root / rel, name, scene, mm + i, refined, seed=i)
    data = mmbind.load_dataset("sun-rgbd", root=root, test_fraction=0.0)
    assert data.class_names == ["bedroom", "garage", "kitchen"]
    train = data.splits["train"]
    assert sorted(train["depth"].keys) == sorted(scenes)
    by_key = dict(zip(train["depth"].keys, zip(train["image"].inputs, train["depth"].inputs, train["depth"].labels)))
    image, depth, label = by_key["kv1/NYUdata/NYU0001"]
    assert Path(image) == root / "kv1/NYUdata/NYU0001/image/NYU0001.jpg"
    assert depth.dtype == np.float32 and depth.shape == (3, 4)
    np.testing.assert_allclose(depth[0], [1.234, 2.5, 0.0, 8.0], rtol=1e-6)  # depth_bfx, decoded, capped
    assert data.class_names[label] == "bedroom"
    _, depth, _ = by_key["realsense/lg/2014_10_24-14_23_38-1311000073"]
    np.testing.assert_allclose(depth[0], (mm[0] + 3) // 2 / 1000, rtol=1e-6)  # fell back to depth/
    sun19 = mmbind.load_dataset("sun-rgbd", root=root, classes="sun19", test_fraction=0.0)
    assert len(sun19.class_names) == 19 and "garage" not in sun19.class_names
    assert len(sun19.splits["train"]["image"]) == 4  # the garage is left out, as the benchmark does
    assert {sun19.class_names[x] for x in sun19.splits["train"]["image"].labels} == {"bedroom", "kitchen"}


def test_sun_rgbd_bad_depth_png(tmp_path):
    root = tmp_path / "SUNRGBD"
    mm = np.full((3, 4), 1500, np.uint16)
    for i in range(3):
        write_sun_scene(root / "kv1" / f"NYU000{i}", f"NYU000{i}", "office", mm, True, seed=i)
    bad = root / "kv1" / "NYU0001" / "depth_bfx" / "NYU0001.png"
    Image.fromarray(np.zeros((3, 4), np.uint8)).save(bad)  # 8-bit: not a depth map
    with pytest.raises(mmbind.InputError, match=r"NYU0001\.png: PNG mode L .* expected a single-channel 16-bit"):
        mmbind.load_dataset("sun-rgbd", root=root)
    with pytest.warns(RuntimeWarning, match=r"skipped 1 bad sample.*NYU0001\.png"):
        data = mmbind.load_dataset("sun-rgbd", root=root, skip_bad=True, test_fraction=0.0)
    assert data.splits["train"]["image"].keys == ["kv1/NYU0000", "kv1/NYU0002"]


# issue 14 item 1: every option docs/datasets.md names passes a recipe's `[data] options` check
# (the factory's own signature), with a value of the documented kind.
COMMON = {"check": False, "skip_bad": True}  # "Options every loader takes"
OWN_SPLIT = {"test_fraction": 0.3, "seed": 1}  # loaders whose layout may have no split of its own
DOCUMENTED = {
    "paired-folder": ("root", {"root": "data", "modalities": ["image", "audio"], **OWN_SPLIT}),
    "manifest": ("path", {"path": "pairs.csv", **OWN_SPLIT}),
    "esc50": ("root", {"root": "ESC-50-master", "test_fold": 1, "esc10": True}),
    "llvip": ("root", {"root": "LLVIP"}),
    "nyu-depth-v2": ("path", {"path": "nyu.mat", "classes": "nyu10", "splits_file": "splits.mat", **OWN_SPLIT}),
    "sun-rgbd": ("root", {"root": "SUNRGBD", "classes": ["bedroom", "office"], "max_depth": 8.0,
                          "depth_folder": "depth", **OWN_SPLIT}),
    "imu-windows": ("path", {"path": "windows.csv", "window_column": "window", "label_column": "label",
                             "split_column": "split", **OWN_SPLIT}),
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_every_documented_option_passes_the_recipe_check(name):
    from mmbind.recipe.factories import Factory, option_problems

    doc = (Path(__file__).parent.parent / "docs" / "datasets.md").read_text()
    section = doc.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
    location, options = DOCUMENTED[name]
    for option in set(options) - {location} - set(OWN_SPLIT):
        assert f"`{option}" in section, f"docs/datasets.md does not document {name} option {option!r}"
    factory = Factory(mmbind.get_dataset(name).factory, f"dataset {name!r}")
    assert option_problems(factory, {**COMMON, **options}) == []
    (problem,) = option_problems(factory, {**COMMON, **options, "skip_bda": True})
    assert problem.startswith(f"unknown option 'skip_bda' of dataset {name!r}; did you mean 'skip_bad'? (allowed: ")
