"""ImageBind's own code as the reference of the ImageBind tests (installed --no-deps by
scripts/setup.sh: imagebind-packaged 0.1.2, pytorchvideo 0.1.5, decord 0.6.0). Nothing of it is
used by mmbind itself.

- ``model_module()``: imagebind/models/imagebind_model.py, imported from the installed package
  without running imagebind/__init__.py (which imports the data module, hence pytorchvideo): a
  bare package object named "imagebind" whose __path__ is the installed folder stands in for it.
- ``data_module()``: imagebind/data.py itself, with exactly three adaptations to today's stack,
  each restoring what ImageBind ran with:
  1. ``torchvision.transforms.functional_tensor`` (renamed ``_functional_tensor`` in
     torchvision 0.17; pytorchvideo 0.1.5 imports the old name) is aliased to the new module;
  2. ``torchaudio.load`` (torchaudio 2.9+ needs torchcodec, absent here) reads with soundfile,
     returning what torchaudio's soundfile backend returned: float32 (channels, frames) and the
     rate;
  3. pytorchvideo's ``ConstantClipsPerVideoSampler`` is the one of the pytorchvideo commit
     ImageBind's requirements pin (28fe037d), which spaces clips by (duration - clip) /
     (clips - 1); the 0.1.5 release on the package index divides by clips. It subclasses
     pytorchvideo's class and differs in that one division. ``EncodedVideo.from_path`` of 0.1.5
     lacks the ``sample_rate`` keyword the pinned commit took (ImageBind passes 16000; it only
     concerns audio tracks, which ImageBind does not decode): it is dropped.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from fractions import Fraction
from pathlib import Path

import pytest

SMALL = dict(  # a 64-wide, 1-2 block ImageBindModel: about 3.6M parameters, builds in seconds
    video_frames=2, kernel_size=(2, 14, 14), out_embed_dim=32,
    vision_embed_dim=64, vision_num_blocks=2, vision_num_heads=4,
    audio_embed_dim=48, audio_num_blocks=2, audio_num_heads=4,
    text_embed_dim=64, text_num_blocks=2, text_num_heads=4,
    depth_embed_dim=32, depth_num_blocks=1, depth_num_heads=2,
    thermal_embed_dim=32, thermal_num_blocks=1, thermal_num_heads=2,
    imu_embed_dim=32, imu_num_blocks=2, imu_num_heads=4)
SMALL_HEADS = {"vision": 4, "text": 4, "audio": 4, "depth": 2, "thermal": 2, "imu": 4}


def _package() -> Path:
    spec = importlib.util.find_spec("imagebind")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("ImageBind's code is not installed (scripts/setup.sh installs imagebind-packaged --no-deps)")
    return Path(list(spec.submodule_search_locations)[0])


def model_module():
    """imagebind.models.imagebind_model, without imagebind/__init__.py."""
    if "imagebind.models.imagebind_model" in sys.modules:
        return sys.modules["imagebind.models.imagebind_model"]
    root = _package()
    if "imagebind" not in sys.modules:
        package = types.ModuleType("imagebind")
        package.__path__ = [str(root)]
        package.__file__ = str(root / "__init__.py")  # where pkg_resources finds its BPE vocabulary
        sys.modules["imagebind"] = package
    return importlib.import_module("imagebind.models.imagebind_model")


def small_model(seed: int = 0):
    """A randomly initialised small ImageBindModel in eval mode, with a text logit scale that
    is not its initial value (so that the import of the learnable scale is checked)."""
    import torch

    module = model_module()
    torch.manual_seed(seed)
    model = module.ImageBindModel(**SMALL).eval()
    with torch.no_grad():
        model.modality_postprocessors["text"][1].log_logit_scale.fill_(3.0)
    return model


def data_module():
    """imagebind/data.py with the three adaptations in this module's docstring."""
    if "imagebind.data" in sys.modules:
        return sys.modules["imagebind.data"]
    model_module()
    pytest.importorskip("pytorchvideo", reason="pytorchvideo 0.1.5 is installed --no-deps by scripts/setup.sh")
    import soundfile
    import torch
    import torchaudio
    import torchvision.transforms._functional_tensor as functional_tensor

    sys.modules.setdefault("torchvision.transforms.functional_tensor", functional_tensor)

    def load(path):
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        return torch.from_numpy(data.T.copy()), rate

    torchaudio.load = load
    data = importlib.import_module("imagebind.data")
    data.ConstantClipsPerVideoSampler = _pinned_sampler()
    encoded = data.EncodedVideo

    class EncodedVideo:
        @staticmethod
        def from_path(path, decoder, decode_audio, sample_rate=None):
            pytest.importorskip("decord", reason="decord 0.6.0 is installed --no-deps by scripts/setup.sh")
            return encoded.from_path(path, decoder=decoder, decode_audio=decode_audio)

    data.EncodedVideo = EncodedVideo
    return data


def _pinned_sampler():
    from pytorchvideo.data import clip_sampling

    class ConstantClipsPerVideoSampler(clip_sampling.ConstantClipsPerVideoSampler):
        def __call__(self, last_clip_time, video_duration, annotation):
            latest = Fraction(max(video_duration - self._clip_duration, 0))
            step = Fraction(latest, max(self._clips_per_video - 1, 1))  # 0.1.5: self._clips_per_video
            start, index = step * self._current_clip_index, self._current_clip_index
            self._current_clip_index += 1
            last = self._current_clip_index >= self._clips_per_video or step * self._current_clip_index > latest
            if last:
                self.reset()
            return clip_sampling.ClipInfo(start, start + self._clip_duration, index, 0, last)

    return ConstantClipsPerVideoSampler


def small_import(folder: Path, modalities=("vision", "text", "depth"), seed: int = 0) -> Path:
    """``small_model(seed)`` saved as a .pth beside ``folder`` and imported by mmbind into it."""
    import torch

    from mmbind_plugins.imagebind import import_imagebind

    checkpoint = folder.with_suffix(".pth")
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torch.save(small_model(seed).state_dict(), checkpoint)
    return import_imagebind(checkpoint, folder, modalities=modalities, num_heads=SMALL_HEADS)
