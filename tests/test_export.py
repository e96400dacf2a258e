"""Export: every built-in tower kind to ONNX (run by onnxruntime) and TorchScript, compared with
mmbind's own embeddings of the same raw inputs; the projector format read back with
TensorBoard's own protobuf."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import mmbind
from mmbind.binder import Binder, BinderConfig, TowerConfig
from mmbind.cli import cli
from mmbind.commands import export as export_commands
from mmbind.errors import ExportError
from mmbind.export.tower import export_tower, read_metadata, run_exported

pytest.importorskip("onnxruntime")

export_commands.register(cli) if "export" not in cli.commands else None
ANCHOR = "image-cnn-tiny"
CLIP = "{clip}"  # replaced by the tiny CLIP folder the fixture writes
# Options per built-in encoder: one transformer block where the kind is a deep ViT (the graph of
# a block is what export must get right; depth only repeats it), model folders written locally.
OPTIONS: dict[str, dict] = {
    "image-cnn-tiny": {}, "image-vit-base": {"depth": 1}, "image-vit-huge": {"depth": 1},
    "image-efficientnet-lite0": {}, "image-timm": {"model": "resnet18"}, "image-clip": {"model": CLIP},
    "image-digits-cnn": {}, "digits-cnn": {}, "digits-vit-tiny": {"depth": 1},
    "audio-cnn-tiny": {}, "audio-cnn-small": {}, "audio-vit-base": {"depth": 1},
    "depth-cnn-tiny": {}, "depth-vit-base": {"depth": 1}, "thermal-cnn-tiny": {}, "thermal-vit-base": {"depth": 1},
    "imu-cnn-tiny": {}, "imu-vit-base": {"depth": 1},
    "text-minilm-l6": {}, "text-hf": {"model": "{minilm}"}, "text-clip": {"model": CLIP},
    "text-transformer-tiny": {}, "text-transformer-base": {"depth": 1},
    "image-openclip": {"model": "{openclip}"}, "text-openclip": {"model": "{openclip}"}, "video-cnn-tiny": {},
}
# The digits world's anchor at the recipe's size: its adaptive pool does not divide 32, which the
# older exporter cannot take, so this kind also covers the torch.export fallback.
PREPROCESS = {"image-digits-cnn": {"size": 32}, "image-openclip": {"size": 64}}
# ImageBind's towers are exported as `mmbind import imagebind` writes them (of a small random
# ImageBindModel, tests/imagebind_reference.py), each with its imported preprocessing.
IMAGEBIND = ("vision", "video", "text", "audio", "depth", "thermal", "imu")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from tiny_clip import write_tiny_clip, write_tiny_openclip

    from mmbind_plugins.text.encoders import minilm_dir

    openclip = tmp_path_factory.mktemp("openclip")
    write_tiny_openclip(openclip)
    return {"{clip}": str(write_tiny_clip(tmp_path_factory.mktemp("clip"))), "{minilm}": str(minilm_dir()),
            "{openclip}": f"local-dir:{openclip}"}


@pytest.fixture(scope="module")
def imagebind(tmp_path_factory) -> Binder:
    from imagebind_reference import small_import

    return Binder.from_pretrained(small_import(tmp_path_factory.mktemp("imagebind") / "model", IMAGEBIND)).eval()


def binder_with(encoder: str, folders: dict[str, str]) -> tuple[Binder, str]:
    """A binder whose tower of the encoder's modality is ``encoder`` (with a trained-looking head)."""
    modality = mmbind.get_encoder(encoder).modality
    options = {k: folders.get(v, v) if isinstance(v, str) else v for k, v in OPTIONS[encoder].items()}
    towers = {} if modality == "image" else {"image": TowerConfig(ANCHOR)}
    towers[modality] = TowerConfig(encoder, options=options, preprocess=PREPROCESS.get(encoder, {}))
    torch.manual_seed(0)
    return Binder(BinderConfig("image", towers)).eval(), modality


def other_inputs(modality: str) -> list:
    """Three inputs, not the two the export traced with: another batch size (and, for language,
    another sequence length), so dynamic axes are exercised."""
    spec = mmbind.get_modality(modality)
    examples = list(spec.example_inputs())
    if spec.language:
        return ["a much longer phrase about the number seven, written in red", *examples][:3]
    return (examples[::-1] * 3)[:3]


def test_every_builtin_encoder_has_an_export_case():
    def first_party(name: str) -> bool:
        factory = mmbind.get_encoder(name).factory
        return getattr(factory, "target", factory.__module__).startswith("mmbind_plugins")

    builtin = [n for n in mmbind.list_encoders() if first_party(n)]
    cases = set(OPTIONS) | {f"imagebind-{m}" for m in IMAGEBIND}
    assert len(builtin) >= 20
    assert set(builtin) <= cases, f"no export case for {sorted(set(builtin) - cases)}"


def assert_onnx_equals_mmbind(binder: Binder, modality: str, path) -> None:
    metadata = export_tower(binder, modality, path, "onnx")
    assert read_metadata(path) == metadata and metadata.fingerprint == binder.fingerprint()
    inputs = other_inputs(modality)
    ours = binder.encode(inputs, modality, convert_to_tensor=True)
    theirs = run_exported(path, binder.prepare(inputs, modality))
    assert theirs.shape == (3, binder.dim)
    assert torch.allclose(theirs, ours, atol=1e-4), float((theirs - ours).abs().max())


@pytest.mark.parametrize("encoder", sorted(OPTIONS))
def test_onnx_equals_mmbind(encoder, folders, tmp_path):
    binder, modality = binder_with(encoder, folders)
    assert_onnx_equals_mmbind(binder, modality, tmp_path / f"{encoder}.onnx")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_shared_projection_is_in_the_exported_graph(fmt, folders, tmp_path):
    binder, modality = binder_with("audio-cnn-tiny", folders)
    projected = Binder(BinderConfig("image", binder.config.towers, shared_projection=True)).eval()
    projected.load_state_dict(binder.state_dict(), strict=False)
    with torch.no_grad():  # a trained-looking projection, not the identity it starts as
        projected.projection.weight.add_(0.3 * torch.randn_like(projected.projection.weight))
    path = tmp_path / f"projected.{fmt}"
    export_tower(projected, modality, path, fmt)
    inputs = other_inputs(modality)
    ours = projected.encode(inputs, modality, convert_to_tensor=True)
    assert not torch.allclose(ours, binder.encode(inputs, modality, convert_to_tensor=True), atol=1e-2)
    assert torch.allclose(run_exported(path, projected.prepare(inputs, modality)), ours, atol=1e-4)


@pytest.mark.parametrize("tower", IMAGEBIND)
def test_imported_imagebind_onnx_equals_mmbind(tower, imagebind, tmp_path):
    modality = next(m for m, t in imagebind.config.towers.items() if t.encoder == f"imagebind-{tower}")
    assert_onnx_equals_mmbind(imagebind, modality, tmp_path / f"imagebind-{tower}.onnx")


@pytest.mark.parametrize("encoder", ["audio-cnn-tiny", "image-digits-cnn", "text-minilm-l6", "imu-vit-base",
                                     "text-transformer-tiny"])
def test_torchscript_equals_mmbind(encoder, folders, tmp_path):
    binder, modality = binder_with(encoder, folders)
    path = tmp_path / f"{encoder}.pt"
    export_tower(binder, modality, path, "torchscript")
    assert read_metadata(path).inputs == (["input"] if modality != "text" else
                                          list(binder.prepare(["x"], modality)))
    inputs = other_inputs(modality)
    ours = binder.encode(inputs, modality, convert_to_tensor=True)
    assert torch.allclose(run_exported(path, binder.prepare(inputs, modality)), ours, atol=1e-4)


def test_a_tower_fed_strings_says_why_it_cannot_be_exported(tmp_path, caption_plugin):
    binder = Binder(BinderConfig("image", {"image": TowerConfig(ANCHOR), "caption": TowerConfig("caption-bytes")}))
    with pytest.raises(ExportError, match=r"caption modality has no example_inputs\(\)"):
        export_tower(binder, "caption", tmp_path / "c.onnx")
    with pytest.raises(ExportError, match=r"caption tower cannot be exported: its collated batch is a list of str"):
        export_tower(binder, "caption", tmp_path / "c.onnx", batch=binder.prepare(["a cat", "a dog"], "caption"))
    assert not (tmp_path / "c.onnx").exists()
    with pytest.raises(ExportError, match="no 'audio' tower"):
        export_tower(binder, "audio", tmp_path / "a.onnx")


def test_export_command_writes_and_checks_the_file(tmp_path, folders):
    binder, _ = binder_with("text-transformer-tiny", folders)
    binder.save_pretrained(tmp_path / "model")
    out = tmp_path / "text.onnx"
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "model"), "-m", "text", "--format", "onnx", str(out),
                                      "--input", "seven", "--input", "the number three in red"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["inputs"] == ["input_ids", "attention_mask"] and summary["max_abs_difference"] < 1e-4
    assert summary["fingerprint"] == binder.fingerprint() and not list(tmp_path.glob(".*partial*"))
    bad = CliRunner().invoke(cli, ["export", str(tmp_path / "model"), "-m", "depth", str(tmp_path / "d.onnx")])
    assert bad.exit_code == 1 and "no 'depth' tower" in bad.output


# --- the TensorBoard projector --------------------------------------------------------------------
def test_export_projector_reads_back_with_tensorboard(tmp_path):
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    from mmbind.store import EmbeddingStore

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((7, 8)).astype(np.float32)
    with EmbeddingStore(tmp_path / "s.h5") as store:
        store.create_collection("img", modality="image", dim=8, fingerprint="fp")
        store.add("img", vectors, fingerprint="fp", ids=[f"e{i}" for i in range(7)], labels=[0, 1, None, 3, 4, 5, 6],
                  paths=[f"/data/{i}.png" for i in range(7)],
                  metas=[{"colour": "red\tish"}, None, {"speaker": "ann"}, {}, {}, {}, {"colour": "blue"}])
    out = tmp_path / "projector"
    result = CliRunner().invoke(cli, ["export-projector", str(tmp_path / "s.h5"), "img", str(out)])
    assert result.exit_code == 0, result.output
    config = text_format.Parse((out / "projector_config.pbtxt").read_text(), ProjectorConfig())
    (embedding,) = config.embeddings
    assert (embedding.tensor_name, embedding.tensor_path, embedding.metadata_path) == ("img", "tensors.tsv",
                                                                                       "metadata.tsv")
    read = np.loadtxt(out / embedding.tensor_path, delimiter="\t", dtype=np.float32)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)  # the store keeps unit vectors
    assert read.shape == (7, 8) and np.allclose(read, unit, atol=1e-6)
    rows = [line.split("\t") for line in (out / embedding.metadata_path).read_text().splitlines()]
    assert rows[0] == ["id", "label", "path", "colour", "speaker"] and len(rows) == 8
    assert rows[1] == ["e0", "0", "/data/0.png", "red ish", ""] and rows[3][1:] == ["", "/data/2.png", "", "ann"]
    missing = CliRunner().invoke(cli, ["export-projector", str(tmp_path / "s.h5"), "nope", str(out)])
    assert missing.exit_code == 1 and "nope" in missing.output
