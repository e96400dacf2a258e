"""fashion-mnist: the 70,000 real Fashion-MNIST images (IDX files) plus text prompts naming the classes.

Reads the four IDX files of the original release (Debian's ``dataset-fashion-mnist`` package puts
them in /usr/share/datasets/fashion-mnist/, gzipped): ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each plain
or ``.gz``. The official split is kept: 60,000 train, 10,000 test images (28x28 uint8 grey).

The text modality holds prompts built from the class names and templates, for locked-image
tuning (a frozen image anchor, a trained text head): train and test use disjoint templates, so
text retrieval is measured on phrasings the head never saw. Every sample's key is its class
index, so a prompt pairs with every image of its class.
"""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Sequence

import numpy as np

from mmbind.plugin.specs import BindingData, InputError, ModalitySamples

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# The names of the dataset's README, as a person would say them.
CLASS_NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
               "ankle boot"]
TRAIN_TEMPLATES = ("{}", "a photo of a {}", "a {}", "a picture of a {}", "an image of a {}",
                   "a black and white photo of a {}", "a low resolution photo of a {}",
                   "a product photo of a {}", "a photo of the {}", "a grey photo of a {}",
                   "a cropped photo of a {}", "a small photo of a {}", "the {}",
                   "a close-up photo of a {}", "a catalogue image of a {}", "this is a {}")
TEST_TEMPLATES = ("a blurry photo of a {}", "a photo of one {}", "a fashion item: a {}",
                  "a thumbnail of a {}", "a greyscale picture of a {}", "an online shop photo of a {}")
_DTYPES = {0x08: np.uint8}  # the IDX type byte; Fashion-MNIST uses unsigned bytes only


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (plain or gzipped) as a numpy array: the big-endian header (two zero bytes,
    the type byte, the number of dimensions, one 32-bit size per dimension) then the values.
    Raises InputError naming the file when the header or the size does not match."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise InputError(f"{path}: unreadable IDX file ({error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise InputError(f"{path}: not an IDX file (expected a header starting with two zero bytes)")
    kind, ndim = raw[2], raw[3]
    if kind not in _DTYPES:
        raise InputError(f"{path}: IDX type byte 0x{kind:02x}; expected 0x08 (unsigned bytes)")
    header = 4 + 4 * ndim
    if ndim < 1 or len(raw) < header:
        raise InputError(f"{path}: IDX header with {ndim} dimensions is truncated")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    count = int(np.prod(shape))
    if len(raw) - header != count:
        raise InputError(f"{path}: IDX header says shape {shape} ({count} values) but the file holds "
                         f"{len(raw) - header}")
    return np.frombuffer(raw, dtype=_DTYPES[kind], offset=header).reshape(shape)


def find_file(root: Path, stem: str) -> Path:
    """``root/stem`` or ``root/stem.gz``, whichever exists."""
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise InputError(f"{root / stem}[.gz]: no such file; expected the Fashion-MNIST IDX files (Debian package "
                     f"dataset-fashion-mnist installs them in {DEFAULT_ROOT})")


def read_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) of one official split, checked."""
    image_path, label_path = (find_file(root, stem) for stem in FILES[split])
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3:
        raise InputError(f"{image_path}: shape {images.shape}; expected (N, rows, columns) images")
    if labels.ndim != 1 or len(labels) != len(images):
        raise InputError(f"{label_path}: {labels.shape} labels for {len(images)} images in {image_path}; "
                         f"expected one label per image")
    if labels.size and labels.max() >= len(CLASS_NAMES):
        raise InputError(f"{label_path}: label {int(labels.max())}; expected 0-{len(CLASS_NAMES) - 1}")
    return images, labels.astype(np.int64)


def _subset(labels: np.ndarray, n_per_class: int | None, seed: int) -> np.ndarray:
    """All rows, or the first ``n_per_class`` of each class in a seeded order (sorted)."""
    if n_per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    rows = [rng.permutation(np.flatnonzero(labels == c))[:n_per_class] for c in range(len(CLASS_NAMES))]
    return np.sort(np.concatenate(rows))


def _prompts(templates: Sequence[str], split: str) -> ModalitySamples:
    texts, labels, meta = [], [], []
    for template in templates:
        if "{}" not in template:
            raise ValueError(f"fashion-mnist template {template!r} needs a '{{}}' for the class name")
        for label, name in enumerate(CLASS_NAMES):
            texts.append(template.format(name))
            labels.append(label)
            meta.append({"template": template, "split": split})
    return ModalitySamples(texts, labels, [str(label) for label in labels], meta)


def load_fashion_mnist(root: str | Path = DEFAULT_ROOT, train_per_class: int | None = None,
                       test_per_class: int | None = None, seed: int = 0,
                       train_templates: Sequence[str] = TRAIN_TEMPLATES,
                       test_templates: Sequence[str] = TEST_TEMPLATES) -> BindingData:
    """Fashion-MNIST as BindingData: image (28x28 uint8 grey arrays) and text (prompts) in the
    official train (60,000) and test (10,000) splits.

    train_per_class / test_per_class: keep only that many images of each class (a seeded choice;
    None keeps all). train_templates / test_templates: the prompt templates of each split, each
    with one '{}' for the class name.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder; expected the Fashion-MNIST IDX files (Debian package "
                         f"dataset-fashion-mnist installs them in {DEFAULT_ROOT})")
    for name, value in (("train_per_class", train_per_class), ("test_per_class", test_per_class)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"fashion-mnist option {name} must be None or an int >= 1, got {value!r}")
    splits = {}
    for split, per_class, templates in (("train", train_per_class, train_templates),
                                        ("test", test_per_class, test_templates)):
        images, labels = read_split(root, split)
        rows = _subset(labels, per_class, seed + (split == "test"))
        images.setflags(write=False)
        splits[split] = {
            "image": ModalitySamples(list(images[rows]), labels[rows].tolist(),
                                     [str(label) for label in labels[rows]],
                                     [{"row": int(r)} for r in rows]),
            "text": _prompts(templates, split),
        }
    return BindingData(splits=splits, class_names=list(CLASS_NAMES),
                       description=f"Fashion-MNIST from {root} (real images, official split) with class-name "
                                   f"prompts ({len(train_templates)} train, {len(test_templates)} test templates)")
