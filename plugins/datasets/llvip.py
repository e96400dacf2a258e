"""llvip: LLVIP visible/infrared pairs, visible/{train,test}/*.jpg and infrared/{train,test}/*.jpg.

A visible image and an infrared image with the same stem in the same split are one pair (image
+ thermal). LLVIP is a pedestrian-detection set, so it has no class labels (-1).
"""
from __future__ import annotations

import warnings
from pathlib import Path

from mmbind.plugin.specs import BindingData, InputError
from mmbind_plugins.datasets.common import Record, build, files_by_stem, require_dir

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def load_llvip(root: str | Path, skip_bad: bool = False, check: bool = True) -> BindingData:
    root = require_dir(Path(root), "the LLVIP folder holding visible/ and infrared/")
    for side in ("visible", "infrared"):
        require_dir(root / side, f"LLVIP's {side}/train and {side}/test folders")
    splits = [s for s in ("train", "test") if (root / "visible" / s).is_dir() or (root / "infrared" / s).is_dir()]
    if not splits:
        raise InputError(f"{root}: visible/ and infrared/ hold no train/ or test/ folder; expected LLVIP's layout")
    records = []
    unpaired: list[Path] = []
    for split in splits:
        visible = _files(root / "visible" / split)
        infrared = _files(root / "infrared" / split)
        for stem in sorted(set(visible) | set(infrared)):
            if stem in visible and stem in infrared:
                records.append(Record(split, stem, {"image": visible[stem], "thermal": infrared[stem]},
                                      meta={"stem": stem}))
            else:
                unpaired.append(visible.get(stem) or infrared[stem])
    if unpaired:
        warnings.warn(f"llvip {root}: {len(unpaired)} image(s) without a partner of the same stem were left out: "
                      f"{', '.join(map(str, unpaired[:5]))}{', ...' if len(unpaired) > 5 else ''}",
                      RuntimeWarning, stacklevel=2)
    return build(records, "llvip", (), skip_bad, check, min_modalities=2,
                 description=f"LLVIP visible/infrared pairs from {root}")


def _files(folder: Path) -> dict[str, Path]:
    return files_by_stem(folder, IMAGE_EXTENSIONS) if folder.is_dir() else {}
