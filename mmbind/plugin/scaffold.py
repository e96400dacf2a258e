"""``mmbind new-plugin NAME --modality M``: a ready plugin package for a new sensor modality.

The package installs, passes its own tests (the conformance suite of ``mmbind check-plugin``
included) and trains out of the box: its simulated dataset is composed with the digits world
by class, so the new modality binds to the image anchor and gets zero-shot through the digits
world's text. The author then replaces the simulated data with real recordings and the small
1-D CNN with whatever the sensor needs.
"""
from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
MODALITY = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


def new_plugin(name: str, modality: str, output: str | Path, channels: int = 3) -> Path:
    """Write the package ``mmbind-<name>`` into ``output``/mmbind-<name>; returns its folder."""
    if not NAME.match(name):
        raise ValueError(f"plugin name {name!r}: expected lower-case letters, digits and '-', starting with a letter")
    if not MODALITY.match(modality) or keyword.iskeyword(modality):
        raise ValueError(f"modality {modality!r}: expected lower-case letters, digits and '_', starting with a letter")
    if not 1 <= channels <= 64:
        raise ValueError(f"channels must be between 1 and 64, got {channels}")
    package = "mmbind_" + name.replace("-", "_")
    root = Path(output) / f"mmbind-{name}"
    if root.exists():
        raise FileExistsError(f"{root} exists: choose another --output or remove it")
    values = {"name": name, "modality": modality, "package": package, "channels": channels,
              "Modality": modality.replace("_", " ").capitalize()}
    for relative, template in FILES.items():
        path = root / Template(relative).substitute(values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(template).substitute(values))
    return root


FILES: dict[str, str] = {}

FILES["pyproject.toml"] = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "mmbind-$name"
version = "0.1.0"
description = "$Modality signals as an mmbind modality"
requires-python = ">=3.11"
dependencies = ["mmbind"]

[project.optional-dependencies]
test = ["pytest>=8"]

[project.entry-points.mmbind]
$name = "$package"

[tool.setuptools]
packages = ["$package"]
'''

FILES["README.md"] = '''# mmbind-$name

A `$modality` modality for [mmbind](https://pypi.org/project/mmbind/): $channels-channel signals
over time, bound to mmbind's image anchor. Made by `mmbind new-plugin $name --modality $modality`.

```bash
pip install -e ".[test]"
mmbind plugins                      # lists "$name"
mmbind check-plugin $name           # the conformance suite
pytest                              # this package's tests
mmbind run recipes/$name.toml       # bind $modality to the digits world's images; zero-shot through its text
```

What to change first:
- `$package/data.py`: the dataset. It is **simulated** now (a tone per class); read your
  recordings instead and keep the class names of the dataset you compose with.
- `$package/io.py`: what a `$modality` file is (.npy or .csv, $channels channels x time).
- `$package/model.py`: the encoder (a small 1-D CNN from `mmbind.nn`).
'''

FILES["$package/__init__.py"] = '''"""The $modality modality for mmbind: hooks only. Heavy code (torch) loads inside the
factories through mmbind.lazy, so `mmbind --help` stays fast with this plugin installed."""
import mmbind

PLUGIN_API = 1  # the mmbind plugin contract this package is written for

EXTENSIONS = (".npy", ".csv")


def example_inputs() -> list:
    """Two short in-memory recordings: what `mmbind check-plugin` runs through every step."""
    from $package.data import simulate

    return [simulate(3, seed=0), simulate(7, seed=1)]


@mmbind.hookimpl
def register_modalities(register):
    register(mmbind.Modality(
        "$modality", mmbind.lazy("$package.io:load"), mmbind.lazy("$package.transforms:transform"),
        default_encoder="$modality-cnn", extensions=EXTENSIONS, example_inputs=example_inputs,
        description="$channels-channel $modality signals over time (.npy or .csv)"))


@mmbind.hookimpl
def register_encoders(register):
    register(mmbind.EncoderSpec("$modality-cnn", "$modality", mmbind.lazy("$package.model:encoder"),
                                "a small 1-D CNN over time (mmbind.nn.ConvNet1d)"))


@mmbind.hookimpl
def register_datasets(register):
    register(mmbind.DatasetSpec("$modality-sim", ("$modality",), mmbind.lazy("$package.data:load"),
                                "SIMULATED $modality signals of the digits 0-9 (a tone per class)"))
'''

FILES["$package/io.py"] = '''"""Loading $modality recordings: (CHANNELS, T) float32 from a .npy or .csv file or an array.
Every bad input is an InputError that names the file and says what was expected."""
from pathlib import Path

import numpy as np

from mmbind import InputError

CHANNELS = $channels
EXPECTED = f"{CHANNELS} channels x time: a .npy array (CHANNELS, T), a .csv with one column per channel"


def load(x) -> np.ndarray:
    if isinstance(x, (str, Path)):
        path = Path(x)
        if not path.is_file():
            raise InputError(f"{path}: no such file (expected {EXPECTED})")
        if path.stat().st_size == 0:
            raise InputError(f"{path}: the file is empty (expected {EXPECTED})")
        try:
            if path.suffix.lower() == ".npy":
                array = np.load(path, allow_pickle=False)  # never run pickles from a user's file
            elif path.suffix.lower() == ".csv":
                array = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2).T
            else:
                raise InputError(f"{path}: unsupported file type {path.suffix!r} (expected .npy or .csv)")
        except (OSError, ValueError, EOFError) as error:
            raise InputError(f"{path}: unreadable ({error}); expected {EXPECTED}") from error
        return _checked(array, str(path))
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return _checked(x, f"array of shape {x.shape}")
    raise InputError(f"input of type {type(x).__name__}: expected {EXPECTED}")


def _checked(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype.kind not in "iuf" or array.ndim != 2 or array.shape[0] != CHANNELS or array.shape[1] < 2:
        raise InputError(f"{where}: has shape {array.shape} and dtype {array.dtype}; expected {EXPECTED}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all() or np.abs(array).max() > 1e6:
        raise InputError(f"{where}: has NaN, inf or absurd (> 1e6) values; expected finite readings")
    return array
'''

FILES["$package/transforms.py"] = '''"""The model input: a (CHANNELS, length) tensor, z-scored per channel, cropped or zero-padded.

Eval (train=False) is pure: mmbind caches its outputs. Train adds a random shift and gain,
drawn from torch's global generator only: mmbind seeds it per batch, so a resumed run is
bit-exact."""
from $package.io import CHANNELS


def transform(train: bool = False, length: int = 128):
    if not isinstance(length, int) or length < 8:
        raise ValueError(f"length must be an int >= 8, got {length!r}")

    def apply(signal):
        import torch

        x = torch.as_tensor(signal, dtype=torch.float32)
        x = (x - x.mean(dim=1, keepdim=True)) / x.std(dim=1, keepdim=True).clamp(min=1e-6)
        out = torch.zeros(CHANNELS, length)
        n = min(length, x.shape[1])
        shift = int(torch.randint(0, x.shape[1] - n + 1, ())) if train else 0
        out[:, :n] = x[:, shift:shift + n]
        if train:
            out = out * (0.8 + 0.4 * torch.rand(()))
        return out

    return apply
'''

FILES["$package/model.py"] = '''"""The $modality encoder: mmbind's 1-D CNN over time."""
from $package.io import CHANNELS


def encoder(output_dim: int = 128, widths: tuple[int, ...] = (32, 64, 128), kernels: tuple[int, ...] = (7, 5, 3),
            dropout: float = 0.1):
    from mmbind.nn import ConvNet1d

    return ConvNet1d(CHANNELS, widths=tuple(widths), kernels=tuple(kernels), output_dim=output_dim, dropout=dropout)
'''

FILES["$package/data.py"] = '''"""A SIMULATED $modality dataset: for each digit 0-9, a recording whose channels carry a tone at
a frequency set by the digit, with random phase, amplitude and noise. Replace it with your
recordings; keep the class names of the dataset you compose with (the digits world's here)."""
import numpy as np

import mmbind
from $package.io import CHANNELS

CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
LENGTH = 160


def simulate(digit: int, seed: int) -> np.ndarray:
    """One simulated (CHANNELS, LENGTH) recording of ``digit``."""
    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH) / LENGTH
    channels = [rng.uniform(0.5, 1.5) * np.sin(2 * np.pi * (2 + digit + c) * t + rng.uniform(0, 2 * np.pi))
                for c in range(CHANNELS)]
    return (np.stack(channels) + rng.normal(0, 0.3, (CHANNELS, LENGTH))).astype(np.float32)


def load(n_per_class: int = 60, test_per_class: int = 20, seed: int = 0) -> mmbind.BindingData:
    """Train and test splits of simulated recordings, keyed by class (so they compose with any
    dataset whose keys start with the class index, like the digits world)."""
    splits = {}
    for offset, (split, n) in enumerate((("train", n_per_class), ("test", test_per_class))):
        labels = [d for d in range(10) for _ in range(n)]
        signals = [simulate(d, seed=seed * 1_000_003 + offset * 100_003 + i) for i, d in enumerate(labels)]
        splits[split] = {"$modality": mmbind.ModalitySamples(signals, labels, [str(d) for d in labels])}
    return mmbind.BindingData(splits, CLASS_NAMES, simulated=frozenset({"$modality"}),
                              description="simulated $modality recordings of the digits")
'''

FILES["recipes/$name.toml"] = '''# Bind $modality to the digits world's image anchor. Its data is composed with the digits world by
# class, so $modality also gets zero-shot through the digits world's text (emergent: $modality and
# text are never paired). Run: mmbind run recipes/$name.toml
name = "$name"
seed = 0

[data]
dataset = "digits-world"

[[data.add]]
dataset = "$modality-sim"
modalities = ["$modality"]

[anchor]
modality = "image"
encoder = "image-digits-cnn"
options = { output_dim = 128, width = 16 }
preprocess = { size = 32 }

[anchor.pretrain]
epochs = 2

[modalities.text]
encoder = "text-minilm-l6"
head = "mlp"
augment = false

[modalities.$modality]
encoder = "$modality-cnn"
loss_options = { positives = "label" }

[bind]
epochs = 4
batch_size = 128
lr = 2e-3

[eval]
templates = ["{}", "the number {}", "the digit {}"]
supervised_baselines = false
'''

FILES["tests/test_$package.py"] = '''"""The plugin's own tests: the conformance suite, its loader on bad files, its dataset."""
import numpy as np
import pytest

import mmbind
from mmbind.testing import assert_plugin_conforms


def test_conforms_to_the_plugin_contract():
    assert_plugin_conforms("$name")


def test_bad_files_name_themselves(tmp_path):
    load = mmbind.get_modality("$modality").load
    (tmp_path / "short.npy").write_bytes(b"not numpy")
    with pytest.raises(mmbind.InputError, match="short.npy"):
        load(str(tmp_path / "short.npy"))
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3, 4), np.float32))
    with pytest.raises(mmbind.InputError, match="wrong.npy.*expected"):
        load(str(tmp_path / "wrong.npy"))


def test_dataset_pairs_by_class_with_the_digits_world_names():
    data = mmbind.load_dataset("$modality-sim", n_per_class=3, test_per_class=1)
    train = data.splits["train"]["$modality"]
    assert len(train) == 30 and set(train.labels) == set(range(10))
    assert data.class_names[7] == "seven" and train.keys[0] == str(train.labels[0])
    assert data.simulated == {"$modality"}
'''
