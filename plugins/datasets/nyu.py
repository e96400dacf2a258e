"""nyu-depth-v2: the labelled NYU Depth v2 file nyu_depth_v2_labeled.mat (MATLAB v7.3 = HDF5).

MATLAB stores arrays column-major, so HDF5 shows them with the axes reversed: 'images' is
(N, 3, W, H) uint8 and 'depths' (N, W, H) float metres. Each frame is transposed back to
(H, W, 3) and (H, W) (480 x 640 for the real file). 'sceneTypes' (and 'scenes') hold HDF5
object references to MATLAB char arrays (uint16 codes). Frames are read from the file only
when used, so the 2.8 GB file is never held in memory at once.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmbind.plugin.specs import BindingData, InputError
from mmbind_plugins.datasets.common import Lazy, Record, build, split_of

FILENAME = "nyu_depth_v2_labeled.mat"
# The 10-class scene protocol used for NYU-D zero-shot (9 common scene types + others).
NYU10 = ("bathroom", "bedroom", "bookstore", "classroom", "dining_room", "home_office", "kitchen",
         "living_room", "office", "others")


class NyuFrames:
    """Reads frame i of 'images' as (H, W, 3) uint8 or of 'depths' as (H, W) float32 metres.

    The HDF5 handle is opened per process (h5py handles do not survive a fork) and is not
    pickled, so DataLoader workers each open their own.
    """

    def __init__(self, path: Path, dataset: str) -> None:
        self.path, self.dataset = Path(path), dataset
        self._file: Any = None
        self._pid = -1

    def __getstate__(self) -> dict:
        return {"path": self.path, "dataset": self.dataset, "_file": None, "_pid": -1}

    def __call__(self, index: int) -> np.ndarray:
        import h5py

        if self._file is None or self._pid != os.getpid():
            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        frame = self._file[self.dataset][index]
        if self.dataset == "images":
            return np.ascontiguousarray(frame.transpose(2, 1, 0))  # (3, W, H) -> (H, W, 3)
        return np.ascontiguousarray(frame.T, dtype=np.float32)  # (W, H) -> (H, W)


def load_nyu_depth_v2(
    path: str | Path,
    classes: str = "all",
    splits_file: str | Path | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    skip_bad: bool = False,
    check: bool = True,
) -> BindingData:
    """image + depth per frame, labelled by scene type. classes="all" keeps every scene type
    (sorted); "nyu10" maps them to the 10-class protocol (rare types -> "others").
    splits_file: NYU's splits.mat (trainNdxs/testNdxs, 1-based) for the standard 795/654 split;
    otherwise a seeded scene-stratified test_fraction."""
    import h5py

    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        raise InputError(f"{path}: no such file; expected the labelled NYU Depth v2 file {FILENAME}")
    if classes not in ("all", "nyu10"):
        raise ValueError(f"nyu-depth-v2 option classes={classes!r}: expected 'all' or 'nyu10'")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise InputError(f"{path}: not an HDF5 (MATLAB v7.3) file ({error}); expected {FILENAME}") from error
    with handle as f:
        n = _check_layout(f, path)
        scene_types = _strings(f, "sceneTypes", path)
        scenes = _strings(f, "scenes", path) if "scenes" in f else [""] * n
    if len(scene_types) != n:
        raise InputError(f"{path}: 'sceneTypes' has {len(scene_types)} entries for {n} frames")

    if classes == "nyu10":
        scene_types = [t if t in NYU10 else "others" for t in scene_types]
        names: Sequence[str] = NYU10
    else:
        names = sorted(set(scene_types))
    index = {name: i for i, name in enumerate(names)}
    labels = [index[t] for t in scene_types]
    keys = [f"{i + 1:04d}" for i in range(n)]  # NYU numbers frames from 1
    if splits_file is not None:
        split = _official_split(Path(splits_file), n)
    else:
        assigned = split_of(keys, labels, test_fraction, seed)
        split = [assigned[k] for k in keys]

    images, depths = NyuFrames(path, "images"), NyuFrames(path, "depths")
    records = [
        Record(split[i], keys[i],
               {"image": Lazy(images, i, f"{path}[images][{i}]"), "depth": Lazy(depths, i, f"{path}[depths][{i}]")},
               labels[i], {"index": i + 1, "scene": scenes[i], "scene_type": scene_types[i]})
        for i in range(n)
    ]
    return build(records, "nyu-depth-v2", [c.replace("_", " ") for c in names], skip_bad, check,
                 min_modalities=2, description=f"NYU Depth v2 labelled frames from {path}")


def _check_layout(f: Any, path: Path) -> int:
    for name in ("images", "depths", "sceneTypes"):
        if name not in f:
            raise InputError(f"{path}: no dataset {name!r} (has {', '.join(sorted(f))}); expected {FILENAME}")
    images, depths = f["images"], f["depths"]
    if images.ndim != 4 or images.shape[1] != 3:
        raise InputError(f"{path}: 'images' has shape {images.shape}; expected (N, 3, W, H) as MATLAB v7.3 stores it")
    if depths.shape != (images.shape[0], images.shape[2], images.shape[3]):
        raise InputError(f"{path}: 'depths' has shape {depths.shape}; expected (N, W, H) = "
                         f"{(images.shape[0], images.shape[2], images.shape[3])} to match 'images'")
    return int(images.shape[0])


def _strings(f: Any, name: str, path: Path) -> list[str]:
    """A cell array of MATLAB strings: object references to uint16 char arrays."""
    refs = np.asarray(f[name][()]).ravel()
    try:
        return ["".join(map(chr, np.asarray(f[ref][()]).ravel())) for ref in refs]
    except (TypeError, ValueError, KeyError) as error:
        raise InputError(f"{path}: {name!r} is not a cell array of strings ({error})") from error


def _official_split(path: Path, n: int) -> list[str]:
    if not path.is_file():
        raise InputError(f"{path}: no such file; expected NYU's splits.mat with trainNdxs and testNdxs")
    try:
        from scipy.io import loadmat

        mat = loadmat(str(path))
        train, test = mat["trainNdxs"], mat["testNdxs"]
    except NotImplementedError:  # a v7.3 (HDF5) .mat
        import h5py

        with h5py.File(path, "r") as f:
            train, test = f["trainNdxs"][()], f["testNdxs"][()]
    except KeyError as error:
        raise InputError(f"{path}: no {error} array; expected trainNdxs and testNdxs") from None
    except (ValueError, TypeError, OSError) as error:
        raise InputError(f"{path}: cannot be read as a .mat file ({error}); expected NYU's splits.mat") from None
    split = [""] * n
    for name, indices in (("train", train), ("test", test)):
        for i in np.asarray(indices).astype(int).ravel():
            if not 1 <= i <= n:
                raise InputError(f"{path}: index {i} is outside 1..{n}")
            split[i - 1] = name
    if "" in split:
        raise InputError(f"{path}: {split.count('')} frames are in neither trainNdxs nor testNdxs")
    return split
