"""OpenCLIP towers against open_clip's own encode_image / encode_text: a randomly initialised small
OpenCLIP model saved to local files (OpenCLIP's local-dir layout, and a bare checkpoint file),
loaded through mmbind, on the same inputs (tensors and real photos through each one's
preprocessing)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import mmbind
from mmbind import Binder
from mmbind.binder import BinderConfig, TowerConfig
from tiny_clip import TINY_OPENCLIP, write_tiny_openclip

open_clip = pytest.importorskip("open_clip")

TOLERANCE = 1e-5
TEXTS = ["a photo of a cat", "a cup of coffee", "an astronaut", "Ünïcödé &amp; punctuation!"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(open_clip's model, its local-dir folder, a bare .pt checkpoint of the same weights)."""
    folder = tmp_path_factory.mktemp("openclip")
    return write_tiny_openclip(folder), folder, folder / "tiny.pt"


def photos() -> list[np.ndarray]:
    from skimage import data

    return [data.chelsea(), data.coffee(), data.astronaut(), data.chelsea()[::6, ::6]]


def test_local_dir_towers_equal_open_clip(saved, capsys):
    model, folder, _ = saved
    source = f"local-dir:{folder}"
    image = mmbind.create_encoder("image-openclip", model=source).eval()
    text = mmbind.create_encoder("text-openclip", model=source).eval()
    assert image.output_dim == text.output_dim == 32
    image_spec = mmbind.get_modality("image")
    ours_pixels = torch.stack([image_spec.transform(size=64, resize_backend="pil")(p) for p in photos()])
    from PIL import Image

    _, _, preprocess = open_clip.create_model_and_transforms(source)
    their_pixels = torch.stack([preprocess(Image.fromarray(p)) for p in photos()])
    tokens = open_clip.get_tokenizer(source)(TEXTS)
    with torch.no_grad():
        differences = {
            "image (files)": float((image(ours_pixels) - model.encode_image(their_pixels)).abs().max()),
            "text": float((text(text.collate(TEXTS)) - model.encode_text(tokens)).abs().max()),
        }
    with capsys.disabled():
        print("\nmax |mmbind - OpenCLIP|:", {k: f"{v:.2e}" for k, v in differences.items()})
    assert all(v < TOLERANCE for v in differences.values()), differences
    # each tower keeps only its half of the model
    assert not any(k.startswith("transformer.") for k in image.state_dict())
    assert not any(k.startswith("visual.") for k in text.clip.state_dict())


def test_checkpoint_file_as_pretrained_and_a_binder_round_trip(saved, tmp_path):
    model, folder, checkpoint = saved
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "mmbind-tiny-clip.json").write_text(json.dumps(TINY_OPENCLIP))
    open_clip.add_model_config(configs)  # a built-in name for the tiny architecture
    towers = {
        "image": TowerConfig("image-openclip", options={"model": "mmbind-tiny-clip", "pretrained": str(checkpoint)},
                             preprocess={"size": 64, "resize_backend": "pil"}, head="none"),
        "text": TowerConfig("text-openclip", options={"model": "mmbind-tiny-clip", "pretrained": str(checkpoint)},
                            head="none", temperature=1 / model.logit_scale.exp().item()),
    }
    binder = Binder(BinderConfig("image", towers)).eval()
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    tokens = open_clip.get_tokenizer("mmbind-tiny-clip")(TEXTS)
    with torch.no_grad():
        assert float((binder.encoders["image"](x) - model.encode_image(x)).abs().max()) < TOLERANCE  # CLIP stats
        assert float((binder(binder.prepare(TEXTS, "text"), "text") - model.encode_text(tokens, normalize=True)).abs().max()) < TOLERANCE
    binder.save_pretrained(tmp_path / "binder")
    checkpoint.rename(checkpoint.with_suffix(".moved"))  # reloading must not need the checkpoint again
    try:
        loaded = Binder.from_pretrained(tmp_path / "binder")
    finally:
        checkpoint.with_suffix(".moved").rename(checkpoint)
    assert np.allclose(loaded.encode(TEXTS, "text"), binder.encode(TEXTS, "text"), atol=1e-6)
    assert np.allclose(loaded.encode(photos(), "image"), binder.encode(photos(), "image"), atol=1e-6)


def test_a_bare_name_needs_a_tag_or_file():
    with pytest.raises(ValueError, match="set options.pretrained to a checkpoint file or an OpenCLIP tag"):
        mmbind.create_encoder("image-openclip", model="ViT-B-32")
