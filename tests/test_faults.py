"""The fault suite (issue 16): damaged and hostile inputs give an InputError naming the file,
through the loaders, ``Binder.encode``, ``mmbind embed`` and datasets with ``skip_bad``."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import mmbind


def png_bomb(path: Path, side: int = 100_000) -> Path:
    """A 100-byte PNG whose header claims side x side pixels (10 G for the default)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def wav_with_rate(path: Path, claimed_rate: int, seconds: float = 2.5) -> Path:
    """A real 8 kHz 16-bit WAV whose header then claims ``claimed_rate`` Hz."""
    import soundfile

    soundfile.write(str(path), np.zeros(int(8000 * seconds), np.float32), 8000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    struct.pack_into("<II", data, 24, claimed_rate, claimed_rate * 2)  # sample rate, byte rate
    path.write_bytes(bytes(data))
    return path


def test_a_decompression_bomb_is_an_input_error_naming_the_file(tmp_path):
    bomb = png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 200
    with pytest.raises(mmbind.InputError, match=r"bomb\.png: refused, its header claims more pixels"):
        mmbind.get_modality("image").load(str(bomb))


def test_a_wav_header_claiming_1_hz_is_refused_before_any_large_allocation(tmp_path):
    wav = wav_with_rate(tmp_path / "slow.wav", 1)
    assert 30_000 < wav.stat().st_size < 50_000
    with pytest.raises(mmbind.InputError, match=r"slow\.wav: sample rate 1: expected a whole number of Hz between"):
        mmbind.get_modality("audio").load(str(wav))


def test_a_directory_is_not_called_a_missing_audio_file(tmp_path):
    with pytest.raises(mmbind.InputError, match="is a directory, not an audio file"):
        mmbind.get_modality("audio").load(str(tmp_path))


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_an_input_error(tmp_path, text):
    with pytest.raises(mmbind.InputError, match="empty or whitespace-only text"):
        mmbind.get_modality("text").load(text or " ")
    (tmp_path / "blank.txt").write_text(text)
    with pytest.raises(mmbind.InputError, match=r"blank\.txt: empty or whitespace-only text"):
        mmbind.get_modality("text").load(str(tmp_path / "blank.txt"))


def test_encode_names_the_input_whose_embedding_is_not_finite(tmp_path):
    import torch

    from mmbind.binder import Binder, BinderConfig, TowerConfig

    torch.manual_seed(0)
    binder = Binder(BinderConfig("image", {"image": TowerConfig("image-cnn-tiny", head="none"),
                                           "imu": TowerConfig("imu-cnn-tiny", preprocess={"length": 64})}))
    signs = np.where(np.random.default_rng(1).random((6, 64)) < 0.5, -1, 1)
    huge = (3e38 * signs).astype(np.float32)  # finite, but the encoder overflows on it (inf - inf)
    np.save(tmp_path / "huge.npy", huge)
    fine = np.random.default_rng(0).normal(size=(6, 64)).astype(np.float32)
    with pytest.raises(mmbind.InputError, match=r"huge\.npy: its imu embedding is not finite"):
        binder.encode([fine, str(tmp_path / "huge.npy")], "imu")
    assert np.isfinite(binder.encode([fine], "imu")).all()


def test_manifest_paths_stay_inside_its_folder_unless_asked(tmp_path):
    from PIL import Image

    inside = tmp_path / "data"
    inside.mkdir()
    for name, folder in (("in.png", inside), ("out.png", tmp_path)):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / name)
    manifest = inside / "pairs.csv"
    manifest.write_text("image,text,label\nin.png,a dark square,0\n../out.png,another dark square,1\n")
    with pytest.raises(mmbind.InputError, match=r"row 2: image path '\.\./out\.png' leaves the manifest's folder"):
        mmbind.load_dataset("manifest", path=str(manifest))
    data = mmbind.load_dataset("manifest", path=str(manifest), confine=False, test_fraction=0.5)
    assert sum(len(s["image"]) for s in data.splits.values()) == 2
    manifest.write_text(f"image,text\n{tmp_path / 'out.png'},a dark square\nin.png,another\n")
    with pytest.raises(mmbind.InputError, match="is absolute; expected a path relative"):
        mmbind.load_dataset("manifest", path=str(manifest))
    data = mmbind.load_dataset("manifest", path=str(manifest), allow_absolute=True, test_fraction=0.5)
    assert sum(len(s["image"]) for s in data.splits.values()) == 2


class _Tripwire:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_weight_files_are_never_unpickled_and_errors_name_the_file(tmp_path):
    import torch

    from mmbind.binder import Binder, BinderConfig, TowerConfig
    from mmbind.errors import CheckpointError
    from mmbind.weights import load_torch_file

    evil = tmp_path / "trainer_state.pt"
    torch.save({"optimizer": _Tripwire(str(tmp_path / "UNPICKLED"))}, evil)
    with pytest.raises(CheckpointError, match=r"trainer_state\.pt: refused to unpickle") as error:
        load_torch_file(evil)
    assert not (tmp_path / "UNPICKLED").exists() and "weights_only=False" not in str(error.value)

    model = tmp_path / "model"
    Binder(BinderConfig("image", {"image": TowerConfig("image-cnn-tiny", head="none")})).save_pretrained(model)
    (model / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors file"):
        Binder.from_pretrained(model)
    (model / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json: not a binder config"):
        Binder.from_pretrained(model)
    with pytest.raises(CheckpointError, match="not found: expected a folder written by Binder.save_pretrained"):
        Binder.from_pretrained(tmp_path / "nowhere")
