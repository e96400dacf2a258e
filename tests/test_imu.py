"""The IMU plugin: CSV/NPY loading and its errors, ImageBind's 6 x T input, rotation-consistent
augmentation, encoders, and the real BasicMotions recordings that the aeon wheel ships."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import mmbind
from mmbind_plugins.imu.features import ImuTransform, random_rotation, resample, rotate

CHANNELS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]


def basic_motions_dir() -> Path | None:
    """aeon's wheel ships BasicMotions (.ts): 80 real smart-watch recordings, 6 x 100, 4 activities."""
    spec = importlib.util.find_spec("aeon")  # finds the package without importing it (no numba needed)
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "datasets" / "data" / "BasicMotions"
    return folder if (folder / "BasicMotions_TRAIN.ts").is_file() else None


@pytest.fixture(scope="module")
def imu():
    return mmbind.get_modality("imu")


@pytest.fixture
def recording() -> np.ndarray:
    """(6, 150): each channel a distinct ramp, so a swapped or transposed channel shows."""
    t = np.arange(150, dtype=np.float32)
    return np.stack([t * (c + 1) / 100 + c for c in range(6)]).astype(np.float32)


def test_registered(imu):
    assert imu.default_encoder == "imu-cnn-tiny"
    assert {"imu-cnn-tiny", "imu-vit-base"} <= set(mmbind.list_encoders(modality="imu"))


def test_csv_with_header_in_any_column_order(imu, recording, tmp_path):
    path = tmp_path / "walk.csv"
    order = ["timestamp", "gyro_z", "acc_x", "acc_y", "gyro_x", "acc_z", "gyro_y"]  # extra column, shuffled
    lines = [",".join(order)]
    for t in range(recording.shape[1]):
        values = {"timestamp": f"{t / 50:.3f}", **{c: f"{recording[i, t]:.6f}" for i, c in enumerate(CHANNELS)}}
        lines.append(",".join(values[c] for c in order))
    path.write_text("\n".join(lines) + "\n")
    loaded = imu.load(path)
    assert loaded.shape == (6, 150) and loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, recording, atol=1e-5)


def test_csv_without_header_and_npy_both_orientations(imu, recording, tmp_path):
    plain = tmp_path / "plain.csv"
    np.savetxt(plain, recording.T, delimiter=",", fmt="%.6f")  # time along rows
    np.testing.assert_allclose(imu.load(str(plain)), recording, atol=1e-5)
    for name, array in (("ct.npy", recording), ("tc.npy", recording.T)):
        np.save(tmp_path / name, array)
        np.testing.assert_array_equal(imu.load(tmp_path / name), recording)
    np.testing.assert_array_equal(imu.load(torch.from_numpy(recording.T.copy())), recording)
    assert imu.load(imu.load(recording)) is not None  # idempotent


def test_bad_inputs_name_file_and_expectation(imu, recording, tmp_path):
    five = tmp_path / "five.csv"
    np.savetxt(five, recording[:5].T, delimiter=",")
    with pytest.raises(mmbind.InputError, match=r"five\.csv: 5 columns without a header; expected exactly 6"):
        imu.load(five)
    no_gyro = tmp_path / "nogyro.csv"
    no_gyro.write_text("acc_x,acc_y,acc_z,gyro_x,gyro_y\n1,2,3,4,5\n")
    with pytest.raises(mmbind.InputError, match=r"nogyro\.csv: header .* lacks column\(s\) gyro_z"):
        imu.load(no_gyro)
    nan = tmp_path / "nan.csv"
    nan.write_text("1,2,3,4,5,6\n1,2,nan,4,5,6\n")
    with pytest.raises(mmbind.InputError, match=r"nan\.csv: 1 values are NaN or infinite \(first: channel acc_z, sample 1\)"):
        imu.load(nan)
    words = tmp_path / "words.csv"
    words.write_text("acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z\n1,2,3,4,5,six\n")
    with pytest.raises(mmbind.InputError, match=r"words\.csv: data row 1"):
        imu.load(words)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(mmbind.InputError, match=r"empty\.csv: the file is empty"):
        imu.load(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(CHANNELS) + "\n")
    with pytest.raises(mmbind.InputError, match=r"header\.csv: has a header but no samples"):
        imu.load(header_only)
    np.save(tmp_path / "wrong.npy", np.zeros((5, 100), np.float32))
    with pytest.raises(mmbind.InputError, match=r"wrong\.npy: shape \(5, 100\); expected 6 channels"):
        imu.load(tmp_path / "wrong.npy")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(mmbind.InputError, match=r"objects\.npy: cannot be read"):  # never unpickled
        imu.load(tmp_path / "objects.npy")
    with pytest.raises(mmbind.InputError, match=r"gone\.csv: no such IMU file"):
        imu.load(tmp_path / "gone.csv")
    with pytest.raises(mmbind.InputError, match="contains no samples"):
        imu.load(np.zeros((6, 0), np.float32))
    with pytest.raises(mmbind.InputError, match="NaN or infinite"):
        imu.transform()(np.full((6, 10), np.inf))


def test_eval_transform_sizes_and_modes(imu, recording):
    x = imu.transform()(recording)
    assert x.shape == (6, 2000) and x.dtype == torch.float32  # ImageBind's 6 x 2000
    # Resampling a linear ramp keeps it linear, from its first value to its last.
    small = imu.transform(length=300)(recording)
    assert small.shape == (6, 300)
    steps = torch.diff(small[0, 5:-5])
    assert torch.allclose(steps, steps.mean().expand_as(steps), atol=1e-4)
    shrunk = resample(torch.from_numpy(recording), 50)
    assert shrunk.shape == (6, 50) and abs(float(shrunk[2].mean()) - float(recording[2].mean())) < 0.05
    # "pad" keeps the sample rate: centre crop, or repeat the last value.
    cropped = imu.transform(length=100, resize="pad")(recording)
    np.testing.assert_array_equal(cropped.numpy(), recording[:, 25:125])
    padded = imu.transform(length=200, resize="pad")(recording)
    np.testing.assert_array_equal(padded[:, 150:].numpy(), np.repeat(recording[:, -1:], 50, axis=1))
    z = imu.transform(length=200, normalize="channel")(recording)
    assert torch.allclose(z.mean(1), torch.zeros(6), atol=1e-5) and torch.allclose(z.std(1), torch.ones(6), atol=1e-3)
    s = imu.transform(length=200, normalize="sensor")(recording)
    assert torch.isclose(s[:3].pow(2).mean().sqrt(), torch.tensor(1.0)) and torch.isclose(s[3:].pow(2).mean().sqrt(), torch.tensor(1.0))
    with pytest.raises(ValueError, match="resize"):
        imu.transform(resize="stretch")


def test_rotation_is_shared_by_both_sensors():
    torch.manual_seed(3)
    rotation = random_rotation(30.0)
    torch.testing.assert_close(rotation @ rotation.T, torch.eye(3), atol=1e-5, rtol=0)
    assert torch.isclose(torch.det(rotation), torch.tensor(1.0), atol=1e-5)
    angle = torch.rad2deg(torch.arccos(((torch.trace(rotation) - 1) / 2).clamp(-1, 1)))
    assert 0 < angle <= 30.0 + 1e-3
    x = torch.randn(6, 50)
    turned = rotate(x, rotation)
    # Norms of each vector and the angle between acceleration and rotation rate are unchanged.
    torch.testing.assert_close(turned[:3].norm(dim=0), x[:3].norm(dim=0))
    torch.testing.assert_close((turned[:3] * turned[3:]).sum(0), (x[:3] * x[3:]).sum(0), atol=1e-4, rtol=1e-4)


def test_train_augmentation(imu, recording):
    torch.manual_seed(0)
    rotate_only = ImuTransform(train=True, length=150, scale=0, time_warp=0, shift=0, jitter=0)
    x = rotate_only(recording)
    raw = torch.from_numpy(recording)
    torch.testing.assert_close(x[:3].norm(dim=0), raw[:3].norm(dim=0), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(x, raw)
    full = imu.transform(train=True, length=150)
    a, b = full(recording), full(recording)
    assert a.shape == (6, 150) and not torch.equal(a, b)
    # Mild: the augmented signal stays close to the original (relative error well under 50%).
    assert float((a - raw).norm() / raw.norm()) < 0.5
    off = imu.transform(train=True, length=150, rotate_degrees=0, scale=0, time_warp=0, shift=0, jitter=0)
    torch.testing.assert_close(off(recording), raw)


def test_collate_and_encoders(imu, recording):
    batch = imu.collate([imu.transform(length=200)(recording), imu.transform(length=200)(recording * 2)])
    assert batch.shape == (2, 6, 200)
    with pytest.raises(ValueError, match="same length"):
        imu.collate([torch.zeros(6, 200), torch.zeros(6, 100)])
    cnn = mmbind.create_encoder("imu-cnn-tiny", output_dim=64).eval()
    with torch.no_grad():
        out = cnn(batch)
    assert out.shape == (2, 64) and not torch.allclose(out[0], out[1])
    with pytest.raises(ValueError, match=r"expected \(B, 6, T\)"):
        cnn(torch.zeros(2, 5, 200))


def test_transformer_tokens_are_imagebind_windows():
    vit = mmbind.create_encoder("imu-vit-base", depth=1, embed_dim=64, num_heads=4, length=2000)
    assert vit.max_tokens == 250  # 2000 samples / windows of 8
    x = torch.arange(2 * 6 * 2000, dtype=torch.float32).reshape(2, 6, 2000)
    tokens = vit.tokens(x)
    assert tokens.shape == (2, 250, 48)
    # token t of sample b holds channel 0's samples 8t..8t+7, then channel 1's, ... channel 5's.
    torch.testing.assert_close(tokens[1, 3], x[1, :, 24:32].reshape(48))
    assert vit.tokens(x[:, :, :1995]).shape == (2, 250, 48)  # the last window is zero-padded
    with pytest.raises(ValueError, match="length option"):
        vit.tokens(torch.zeros(1, 6, 2100))
    assert vit(x[:, :, :400] / 1e4).shape == (2, 64)


def test_vit_base_default_size():
    vit = mmbind.create_encoder("imu-vit-base").eval()
    assert vit.output_dim == 512 and len(vit.transformer.blocks) == 6  # ImageBind's IMU tower
    with torch.no_grad():
        out = vit(torch.randn(1, 6, 2000))
    assert out.shape == (1, 512) and torch.isfinite(out).all()


@pytest.mark.skipif(basic_motions_dir() is None, reason="needs the aeon wheel (pip install --no-deps aeon)")
def test_real_basic_motions_recordings(imu):
    """Real smart-watch data: 40 train + 40 test recordings of 6 x 100, four activities. Running
    and badminton move the watch far more than standing, which the loaded data must show."""
    data = mmbind.load_dataset("imu-windows", path=basic_motions_dir() / "BasicMotions_TRAIN.ts")
    assert data.class_names == ["Standing", "Running", "Walking", "Badminton"]
    assert {split: len(samples["imu"]) for split, samples in data.splits.items()} == {"train": 40, "test": 40}
    train = data.splits["train"]["imu"]
    assert np.bincount(train.labels).tolist() == [10, 10, 10, 10]
    spread = {c: np.mean([imu.load(x)[:3].std(axis=1).mean() for x, y in zip(train.inputs, train.labels) if y == c])
              for c in range(4)}
    assert spread[1] > 3 * spread[2] > 3 * spread[0]  # running >> walking >> standing
    batch = imu.collate([imu.transform(length=200, normalize="sensor")(x) for x in train.inputs[:8]])
    assert batch.shape == (8, 6, 200) and torch.isfinite(batch).all()
    with torch.no_grad():
        assert mmbind.create_encoder("imu-cnn-tiny").eval()(batch).shape == (8, 256)
