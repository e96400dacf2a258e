"""sun-rgbd: SUN RGB-D scene folders, <scene>/image/*.jpg, <scene>/depth_bfx/*.png (or depth/),
<scene>/scene.txt, found at any depth under the root (kv1/NYUdata/NYU0001, realsense/lg/...).

SUN RGB-D's depth PNGs are 16-bit with the millimetre value rotated left by 3 bits; the
toolbox undoes it as depth = (raw >> 3) | (raw << 13) (16-bit), then / 1000 for metres and
caps at 8 m. Depth maps are decoded when used (``SunDepth``), never all held in memory.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from mmbind.plugin.specs import BindingData, InputError
from mmbind_plugins.datasets.common import Lazy, Record, build, split_of

# The 19 scene classes of the SUN RGB-D scene-classification benchmark (SUN-D zero-shot).
SUN19 = ("bathroom", "bedroom", "classroom", "computer_room", "conference_room", "corridor", "dining_area",
         "dining_room", "discussion_area", "furniture_store", "home_office", "kitchen", "lab",
         "lecture_theatre", "library", "living_room", "office", "rest_space", "study_space")


def decode_depth(raw: np.ndarray, max_depth: float | None = 8.0) -> np.ndarray:
    """SUN RGB-D depth PNG values -> metres (float32); 0 stays 0 (no measurement)."""
    raw = np.asarray(raw).astype(np.uint16)
    millimetres = (raw >> np.uint16(3)) | (raw << np.uint16(13))  # uint16 arithmetic wraps: a rotation
    metres = millimetres.astype(np.float32) / 1000.0
    if max_depth is not None:
        np.minimum(metres, np.float32(max_depth), out=metres)
    return metres


class SunDepth:
    """Reads and decodes one SUN RGB-D depth PNG (a picklable reader for ``Lazy``)."""

    def __init__(self, max_depth: float | None = 8.0) -> None:
        self.max_depth = max_depth

    def __call__(self, path: Path) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                mode = image.mode
                raw = np.array(image)
        except (OSError, UnidentifiedImageError) as error:
            raise InputError(f"{path}: cannot be read as a PNG ({error}); expected a 16-bit SUN RGB-D depth PNG") from None
        if mode not in ("I;16", "I;16B", "I") or raw.ndim != 2 or raw.min() < 0 or raw.max() > 0xFFFF:
            raise InputError(f"{path}: PNG mode {mode} with shape {raw.shape}; expected a single-channel "
                             f"16-bit SUN RGB-D depth PNG")
        return decode_depth(raw, self.max_depth)


def load_sun_rgbd(
    root: str | Path,
    classes: str | Sequence[str] = "all",
    depth_folder: str = "depth_bfx",
    max_depth: float | None = 8.0,
    test_fraction: float = 0.2,
    seed: int = 0,
    skip_bad: bool = False,
    check: bool = True,
) -> BindingData:
    """image + depth per scene folder, labelled by scene.txt. classes="all" keeps every scene
    (sorted); "sun19" or a list keeps those classes only (others are left out, as the
    benchmark does). depth_folder "depth_bfx" (refined) falls back to depth/ where missing."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder; expected the SUN RGB-D root (kv1/, kv2/, realsense/, xtion/)")
    found, broken = [], []
    for folder, subdirs, files in os.walk(root):
        subdirs.sort()
        if "image" in subdirs and (depth_folder in subdirs or "depth" in subdirs):
            subdirs.clear()  # a scene folder holds no further scenes
            try:
                found.append(_scene(Path(folder), root, depth_folder))
            except InputError as error:
                if not skip_bad:
                    raise InputError(f"dataset 'sun-rgbd': {error} (pass skip_bad=True to drop bad samples)") from None
                broken.append(folder)
    if broken:
        warnings.warn(f"dataset 'sun-rgbd': skipped {len(broken)} scene folder(s) without exactly one image "
                      f"and one depth file: {', '.join(broken[:5])}{', ...' if len(broken) > 5 else ''}",
                      RuntimeWarning, stacklevel=2)
    if not found:
        raise InputError(f"{root}: no scene folder with image/ and {depth_folder}/ (or depth/) found")
    scenes = sorted({s for *_, s in found if s})
    if classes == "all":
        names: Sequence[str] = scenes
    elif classes == "sun19":
        names = SUN19
    elif isinstance(classes, str):
        raise ValueError(f"sun-rgbd option classes={classes!r}: expected 'all', 'sun19' or a list of scene names")
    else:
        names = list(classes)
    index = {name: i for i, name in enumerate(names)}
    kept = [f for f in found if f[4] in index or (classes == "all" and not f[4])]

    reader = SunDepth(max_depth)
    records = []
    for key, image, depth, folder, scene in kept:
        records.append(Record("", key, {"image": image, "depth": Lazy(reader, depth, str(depth))},
                              index.get(scene, -1), {"scene": scene, "depth_file": depth.name, "folder": key}))
    assigned = split_of([r.key for r in records], [r.label for r in records], test_fraction, seed)
    for record in records:
        record.split = assigned[record.key]
    left_out = len(found) - len(kept)
    return build(records, "sun-rgbd", [n.replace("_", " ") for n in names], skip_bad, check, min_modalities=2,
                 description=f"SUN RGB-D from {root}: {len(kept)} scenes"
                             + (f" ({left_out} of other classes left out)" if left_out else ""))


def _scene(folder: Path, root: Path, depth_folder: str) -> tuple[str, Path, Path, Path, str]:
    depth_dir = folder / depth_folder if (folder / depth_folder).is_dir() else folder / "depth"
    image = _single(folder / "image", (".jpg", ".jpeg", ".png"))
    depth = _single(depth_dir, (".png",))
    scene_file = folder / "scene.txt"
    scene = scene_file.read_text().strip() if scene_file.is_file() else ""
    return folder.relative_to(root).as_posix(), image, depth, folder, scene


def _single(folder: Path, extensions: tuple[str, ...]) -> Path:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in extensions and not p.name.startswith("."))
    if len(files) != 1:
        raise InputError(f"{folder}: holds {len(files)} {'/'.join(extensions)} files; expected exactly one")
    return files[0]
