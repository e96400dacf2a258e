"""The video modality: files the tests write with PyAV and Pillow (MP4/H.264, WebM/VP9, GIF,
frame folders), ImageBind's preprocessing checked against ImageBind's own data module (decord
decoding) on the same file, the imported ImageBind tower on video against ImageBind's model, the
small CPU encoder, and bad input.

The clips are SIMULATED: a real 8x8 digit scan (scikit-learn's digits) moving across the frame.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import imagebind_reference as ib
import mmbind
from mmbind import Binder, InputError


def moving_digit(frames: int, height: int = 72, width: int = 120, digit: int = 3, step: int = 3) -> np.ndarray:
    """(frames, H, W, 3) uint8: a real scanned digit, 4x enlarged and coloured, moving sideways
    (SIMULATED motion)."""
    from sklearn.datasets import load_digits

    scans = load_digits()
    scan = scans.images[list(scans.target).index(digit)] / 16.0
    glyph = np.kron(scan, np.ones((4, 4)))  # 32 x 32
    video = np.full((frames, height, width, 3), 20, np.uint8)
    for t in range(frames):
        x = (step * t) % (width - 32)
        patch = (glyph[..., None] * np.array([230, 120, 40])).astype(np.uint8)
        video[t, 20:52, x:x + 32] = np.maximum(video[t, 20:52, x:x + 32], patch)
    return video


def write_video(path, frames: np.ndarray, fps: int, codec: str = "libx264") -> str:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return str(path)


def write_gif(path, frames: np.ndarray, fps: int) -> str:
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=1000 // fps, loop=0)
    return str(path)


@pytest.fixture(scope="module")
def video():
    return mmbind.get_modality("video")


# --- loading -----------------------------------------------------------------------------------------
def test_every_container_and_frame_folders_load(video, tmp_path):
    frames = moving_digit(24)
    sources = {
        "mp4": write_video(tmp_path / "a.mp4", frames, 12),
        "webm": write_video(tmp_path / "a.webm", frames, 12, codec="libvpx-vp9"),
        "gif": write_gif(tmp_path / "a.gif", frames, 10),
    }
    folder = tmp_path / "frames"
    folder.mkdir()
    from PIL import Image

    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:04d}.png")
    (folder / "fps.txt").write_text("12\n")
    sources["folder"] = str(folder)
    for kind, source in sources.items():
        loaded = video.load(source)
        assert loaded.num_frames == 24, kind
        assert loaded.fps == pytest.approx(10.0 if kind == "gif" else 12.0), kind
        picked = loaded.read([0, 23, 5, 5])
        assert picked.shape == (4, 72, 120, 3) and picked.dtype == np.uint8
        lossless = kind in ("gif", "folder")
        error = np.abs(picked.astype(int) - frames[[0, 23, 5, 5]].astype(int)).mean()
        assert error == 0 if lossless else error < 3, (kind, error)
    in_memory = video.load((frames, 12.0))
    assert in_memory.num_frames == 24 and in_memory.fps == 12.0
    assert video.load(frames).fps == 30.0  # a bare array: the assumed rate
    tensor = video.load(torch.from_numpy(frames).permute(0, 3, 1, 2))  # torchvision's (T, C, H, W)
    assert np.array_equal(tensor.read([3])[0], frames[3])


def test_bad_inputs_are_named(video, tmp_path):
    with pytest.raises(InputError, match="missing.mp4: file not found"):
        video.load(tmp_path / "missing.mp4")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="unsupported file type '.txt'"):
        video.load(tmp_path / "notes.txt")
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    with pytest.raises(InputError, match="broken.mp4"):
        video.transform()(video.load(tmp_path / "broken.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no frame images"):
        video.load(tmp_path / "empty")
    (tmp_path / "frames").mkdir()
    from PIL import Image

    Image.fromarray(moving_digit(1)[0]).save(tmp_path / "frames" / "0.png")
    (tmp_path / "frames" / "fps.txt").write_text("fast")
    with pytest.raises(InputError, match="'fast' is not a frame rate"):
        video.load(tmp_path / "frames")
    with pytest.raises(InputError, match=r"shape \(4, 5\)"):
        video.load(np.zeros((4, 5), np.uint8))
    with pytest.raises(InputError, match="expected .frames, fps."):
        video.load((moving_digit(2), 0))
    with pytest.raises(ValueError, match="crops=2"):
        video.transform(crops=2)


# --- ImageBind's preprocessing and tower --------------------------------------------------------------
@pytest.mark.parametrize("frames, fps, size", [(30, 10, (72, 120)), (183, 25, (160, 96))],
                         ids=["3s-landscape", "7.3s-portrait"])
def test_files_give_imagebinds_tensors_and_embeddings(video, tmp_path, frames, fps, size, capsys):
    data = ib.data_module()
    path = write_video(tmp_path / "digit.mp4", moving_digit(frames, *size, step=2), fps)
    theirs = data.load_and_transform_video_data([path], "cpu")  # (1, 15, 3, 2, 224, 224)
    ours = video.transform()(video.load(path))[None]
    assert ours.shape == theirs.shape == (1, 15, 3, 2, 224, 224)
    preprocessing = float((ours - theirs).abs().max())

    model = ib.small_model()
    torch.save(model.state_dict(), tmp_path / "small.pth")
    from mmbind_plugins.imagebind import import_imagebind

    binder = Binder.from_pretrained(import_imagebind(tmp_path / "small.pth", tmp_path / "binder",
                                                     modalities=["video"], num_heads=ib.SMALL_HEADS))
    with torch.no_grad():
        reference = F.normalize(model({"vision": theirs})["vision"], dim=-1)
    embedded = torch.from_numpy(binder.encode([path], "video"))
    embedding = float((embedded - reference).abs().max())
    with capsys.disabled():
        print(f"\nvideo {frames} frames at {fps} fps: max |mmbind - ImageBind| preprocessing {preprocessing:.2e}, "
              f"embedding {embedding:.2e}")
    assert preprocessing < 1e-5 and embedding < 1e-5


def test_clip_sampling_is_imagebinds(video):
    """5 clips of 2 s over 7.32 s at 25 fps: starts 0, 1.33, 2.66, 3.99, 5.32 s; each clip's first
    and last frame (decord's ceil(fps * t) range, pytorchvideo's uniform subsample)."""
    from mmbind_plugins.video.io import load_video

    transform = video.transform()
    indices = transform.clip_indices(load_video((np.zeros((183, 8, 8, 3), np.uint8), 25.0)))
    assert indices == [[0, 49], [34, 83], [67, 116], [100, 149], [133, 182]]
    short = transform.clip_indices(load_video((np.zeros((15, 8, 8, 3), np.uint8), 10.0)))  # 1.5 s: every clip is all of it
    assert short == [[0, 14]] * 5


# --- the small encoder -------------------------------------------------------------------------------
def test_small_encoder_runs_examples_and_sees_the_direction_of_motion(video):
    encoder = mmbind.create_encoder("video-cnn-tiny").eval()
    transform = video.transform(clips=2, size=32, crops=1)
    batch = video.collate([transform(video.load(x)) for x in video.example_inputs()])
    assert batch.shape == (2, 2, 3, 2, 32, 32)
    assert encoder(batch).shape == (2, 128)
    right = transform((moving_digit(20, step=4), 10.0))
    left = transform((moving_digit(20, step=4)[::-1].copy(), 10.0))  # the same frames played backwards
    with torch.no_grad():
        a, b = encoder(torch.stack([right, left]))
    assert not torch.allclose(a, b, atol=1e-4)
    loss = encoder(torch.stack([right, left])).pow(2).mean()
    loss.backward()
    assert all(p.grad is not None for p in encoder.parameters() if p.requires_grad)


def test_train_transform_is_random_and_seeded(video):
    transform = video.transform(train=True, clips=2, size=32)
    clip = (moving_digit(40), 10.0)
    torch.manual_seed(0)
    first = transform(clip)
    torch.manual_seed(0)
    assert torch.equal(first, transform(clip)) and first.shape == (2, 3, 2, 32, 32)
    assert not torch.equal(first, transform(clip))
