"""ImageBind import, checked against ImageBind's own code (tests/imagebind_reference.py says how
it is loaded and what is adapted).

- Model: a small random ImageBindModel built with ImageBind's code is saved as .pth, imported
  with `mmbind import imagebind` and with the Python function, loaded with Binder.from_pretrained,
  and every modality's embedding (and video's) is compared with ImageBind's on the same tensors.
- Files: mmbind's preprocessing of real files (photos, text, recordings) against ImageBind's
  data module on the same files.
- The imported folder is an ordinary binder: encode, `mmbind embed` and `mmbind search` run on it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import imagebind_reference as ib
from mmbind import Binder
from mmbind.errors import CheckpointError

TOLERANCE = 1e-5
ASTERISK = Path("/usr/share/asterisk/sounds/en")
IB_TO_MMBIND = {"vision": "image", "text": "text", "audio": "audio", "depth": "depth", "thermal": "thermal",
                "imu": "imu"}


def run_cli(*args) -> str:
    """The `mmbind` command in this process (built-in and plugin commands registered as main() does)."""
    from mmbind.cli import _register_builtin_commands, cli
    from mmbind.plugin.manager import register_commands

    _register_builtin_commands()
    register_commands(cli)
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """(ImageBind's model, its checkpoint, the binder imported by the CLI with every tower + video)."""
    root = tmp_path_factory.mktemp("imagebind")
    model = ib.small_model()
    checkpoint = root / "imagebind_small.pth"
    torch.save(model.state_dict(), checkpoint)
    heads = ",".join(f"{m}={n}" for m, n in ib.SMALL_HEADS.items())
    out = run_cli("import", "imagebind", checkpoint, "--out", root / "cli",
                  "--modalities", "vision,text,audio,depth,thermal,imu,video", "--heads", heads)
    assert "imported image, text, audio, depth, thermal, imu, video" in out
    return model, checkpoint, root / "cli"


def inputs(seed: int = 1) -> dict[str, torch.Tensor]:
    """One batch per ImageBind modality, as its data module shapes them."""
    g = torch.Generator().manual_seed(seed)
    from open_clip.tokenizer import SimpleTokenizer

    return {
        "vision": torch.randn(2, 3, 224, 224, generator=g),
        "text": SimpleTokenizer()(["a photo of a dog", "the sound of rain on a tin roof"]),
        "audio": torch.randn(2, 3, 1, 128, 204, generator=g),
        "depth": torch.randn(2, 1, 224, 224, generator=g),
        "thermal": torch.rand(2, 1, 224, 224, generator=g),
        "imu": torch.randn(2, 6, 2000, generator=g),
    }


def test_every_modality_and_video_equals_imagebind(small, capsys):
    model, _, folder = small
    binder = Binder.from_pretrained(folder)
    batch = inputs()
    video = torch.randn(2, 3, 3, 2, 224, 224, generator=torch.Generator().manual_seed(2))  # 3 clips of 2 frames
    with torch.no_grad():
        reference = model(batch)
        reference["video"] = model({"vision": video})["vision"]
        batch["video"] = video
        differences = {}
        for modality, x in batch.items():
            name = IB_TO_MMBIND.get(modality, modality)
            ours = binder(x, name)  # unit vectors
            # ImageBind's outputs carry the logit scale; clip averages (audio, video) are not unit.
            differences[modality] = float((ours - F.normalize(reference[modality], dim=-1)).abs().max())
            if modality not in ("audio", "video"):
                scaled = ours * binder.logit_scale(name)
                differences[modality + " x logit scale"] = float((scaled - reference[modality]).abs().max())
    with capsys.disabled():
        print("\nmax |mmbind - ImageBind|:", json.dumps({k: f"{v:.2e}" for k, v in differences.items()}))
    assert all(v < TOLERANCE for v in differences.values()), differences


def test_temperatures_are_imagebinds_logit_scales(small):
    config = json.loads((small[2] / "config.json").read_text())
    towers = config["towers"]
    assert config["anchor"] == "image" and towers["image"]["head"] == "none"
    expected = {"audio": 0.05, "depth": 0.2, "thermal": 0.1, "imu": 0.2}
    for modality, tau in expected.items():
        assert towers[modality]["temperature"] == pytest.approx(tau) and not towers[modality]["learn_temperature"]
    assert towers["text"]["temperature"] == pytest.approx(np.exp(-3.0)) and towers["text"]["learn_temperature"]
    assert all(t["head"] == "none" for t in towers.values())


def test_python_import_of_two_towers_reads_only_them(small, tmp_path, monkeypatch):
    from mmbind_plugins.imagebind import import_imagebind
    from safetensors import safe_open

    calls = []
    load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or load(*a, **k))
    folder = import_imagebind(small[1], tmp_path / "va", modalities=["audio"], num_heads=ib.SMALL_HEADS)
    assert len(calls) == 1 and calls[0]["weights_only"] is True and calls[0]["mmap"] is True
    with safe_open(folder / "model.safetensors", "pt") as weights:
        towers = {key.split(".")[1] for key in weights.keys()}
        cli = safe_open(small[2] / "model.safetensors", "pt")
        for key in weights.keys():  # the same tensors as the six-tower import by the CLI
            assert torch.equal(weights.get_tensor(key), cli.get_tensor(key)), key
    assert towers == {"image", "audio"}
    binder = Binder.from_pretrained(folder)
    assert binder.modalities == ["image", "audio"]


def test_bad_checkpoints_are_named(tmp_path):
    from mmbind_plugins.imagebind import import_imagebind

    with pytest.raises(CheckpointError, match="missing.pth: no such file"):
        import_imagebind(tmp_path / "missing.pth", tmp_path / "out")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="no 'modality_trunks"):
        import_imagebind(tmp_path / "other.pth", tmp_path / "out")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth: not a readable PyTorch weights file"):
        import_imagebind(tmp_path / "junk.pth", tmp_path / "out")
    torch.save({"model": {"x": object}}, tmp_path / "pickled.pth")
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        import_imagebind(tmp_path / "pickled.pth", tmp_path / "out")


def test_wrong_head_count_is_named(small, tmp_path):
    from mmbind_plugins.imagebind import import_imagebind

    with pytest.raises(CheckpointError, match="text: width 64 is not divisible by 5 heads"):
        import_imagebind(small[1], tmp_path / "out", modalities=["text"], num_heads={"text": 5})


# --- the same inputs from files ------------------------------------------------------------------
def photos(folder: Path) -> list[Path]:
    from PIL import Image
    from skimage import data

    paths = []
    for name, pixels in (("chelsea", data.chelsea()), ("coffee", data.coffee()),
                         ("astronaut", data.astronaut()), ("small-cat", data.chelsea()[::5, ::5])):
        for ext in (".png", ".jpg"):
            Image.fromarray(pixels).save(folder / f"{name}{ext}", quality=90)
            paths.append(folder / f"{name}{ext}")
    return paths


def test_image_files_give_imagebinds_tensors(small, tmp_path, capsys):
    data = ib.data_module()
    paths = photos(tmp_path)
    binder = Binder.from_pretrained(small[2])
    ours = binder.prepare([str(p) for p in paths], "image")
    theirs = data.load_and_transform_vision_data([str(p) for p in paths], "cpu")
    with capsys.disabled():
        print(f"\nimage files: max |mmbind - ImageBind| = {float((ours - theirs).abs().max()):.2e} over {len(paths)} files")
    assert torch.equal(ours, theirs)


TEXTS = ["a dog", "A Photo of a DOG!", "café &amp; crème brûlée", "   spaced\tout\n text  ", "seven",
         "日本語のテキスト", "emoji 🙂 and numbers 3.14"]


def test_texts_give_imagebinds_tokens(small):
    data = ib.data_module()
    binder = Binder.from_pretrained(small[2])
    ours = binder.prepare(TEXTS, "text")  # tokenised by the encoder's collate
    assert torch.equal(ours, data.load_and_transform_text(TEXTS, "cpu"))
    # Longer than 77 tokens: ImageBind cuts the end token off; mmbind keeps it, as OpenCLIP does.
    long = " ".join(["word"] * 100)
    theirs, mine = data.load_and_transform_text([long], "cpu")[0], binder.prepare([long], "text")[0]
    assert torch.equal(mine[:76], theirs[:76]) and mine[76] == 49407 and theirs[76] != 49407


def recordings(n: int = 24) -> list[Path]:
    if not ASTERISK.is_dir():
        pytest.skip("needs Debian asterisk-core-sounds-en-wav")
    files = sorted(ASTERISK.glob("*.wav"))
    step = max(1, len(files) // n)
    return files[::step][:n]


def test_audio_files_give_imagebinds_tensors(small, tmp_path, capsys):
    import soundfile

    data = ib.data_module()
    binder = Binder.from_pretrained(small[2])
    paths = recordings()
    # 16 kHz as well as the recordings' 8 kHz; lengths from 0.2 s to 25 s (1, 2 or 3 distinct clips)
    wave, rate = soundfile.read(paths[0], dtype="float32")
    soundfile.write(tmp_path / "16k.wav", np.repeat(wave, 2), 16_000, subtype="FLOAT")
    paths.append(tmp_path / "16k.wav")
    lengths = [soundfile.info(p).duration for p in paths]
    assert min(lengths) < 2.0 < 4.0 < max(lengths)
    worst = 0.0
    for path in paths:
        ours = binder.prepare([str(path)], "audio")
        theirs = data.load_and_transform_audio_data([str(path)], "cpu")
        worst = max(worst, float((ours - theirs).abs().max()))
    with capsys.disabled():
        print(f"\naudio files: max |mmbind - ImageBind| = {worst:.2e} over {len(paths)} recordings "
              f"({min(lengths):.1f}-{max(lengths):.1f} s)")
    assert worst < TOLERANCE  # resampling and fbank run in the same float32 ops; 0 here in practice


def test_stereo_audio_is_averaged_where_imagebind_takes_channel_0(small, tmp_path, capsys):
    """The documented difference: mmbind averages the channels (its audio loader), ImageBind's
    fbank reads channel 0. mmbind on a stereo file equals ImageBind on its channel average."""
    import soundfile

    data = ib.data_module()
    left, rate = soundfile.read(recordings()[3], dtype="float32")
    right, _ = soundfile.read(recordings()[5], dtype="float32")
    n = min(len(left), len(right))
    stereo = np.stack([left[:n], right[:n]], axis=1)
    soundfile.write(tmp_path / "stereo.wav", stereo, rate, subtype="FLOAT")
    soundfile.write(tmp_path / "mean.wav", stereo.mean(axis=1), rate, subtype="FLOAT")
    binder = Binder.from_pretrained(small[2])
    ours = binder.prepare([str(tmp_path / "stereo.wav")], "audio")
    on_mean = data.load_and_transform_audio_data([str(tmp_path / "mean.wav")], "cpu")
    on_stereo = data.load_and_transform_audio_data([str(tmp_path / "stereo.wav")], "cpu")
    assert float((ours - on_mean).abs().max()) < TOLERANCE
    difference = float((ours - on_stereo).abs().max())
    with capsys.disabled():
        print(f"\nstereo: mmbind (channel mean) vs ImageBind (channel 0) on the same file: max diff {difference:.2f}")
    assert difference > 0.1


# --- an ordinary binder -------------------------------------------------------------------------------
def test_imported_binder_encodes_embeds_and_searches(small, tmp_path):
    binder = Binder.from_pretrained(small[2])
    (tmp_path / "photos").mkdir()
    paths = photos(tmp_path / "photos")
    vectors = binder.encode([str(p) for p in paths], "image")
    assert vectors.shape == (len(paths), 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    texts = binder.encode(["a cat", "a cup of coffee"], "text")
    assert texts.shape == (2, 32)

    store = tmp_path / "store.h5"
    added = json.loads(run_cli("embed", store, tmp_path / "photos", "--binder", small[2], "-m", "image").splitlines()[-1])
    assert added["added"] == len(paths)
    hits = json.loads(run_cli("search", store, f"image:{paths[0]}", "--binder", small[2], "-k", "1", "--json"))
    assert Path(hits[0]["path"]).name == paths[0].name and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    by_text = json.loads(run_cli("search", store, 'text:"a cat"', "--binder", small[2], "-k", "3", "--json"))
    assert len(by_text) == 3
