"""Dataset loaders for data users bring in common layouts (see docs/datasets.md).

Only hook implementations live here; each factory imports its loader module when called.
Every loader takes ``skip_bad`` (drop samples their modality cannot load, with one warning)
and ``check`` (load every sample up front; on by default).
"""
from __future__ import annotations


import mmbind

PLUGIN_API = 1  # the mmbind plugin contract this plugin is written for

# The modalities the generic layouts may hold (the recipe checks declared modalities).
GENERIC_MODALITIES = ("*",)  # any registered modality: the folders/columns name them


@mmbind.hookimpl
def register_datasets(register):
    register(mmbind.DatasetSpec(
        "paired-folder", GENERIC_MODALITIES, mmbind.lazy("mmbind_plugins.datasets.paired_folder:load_paired_folder"),
        "root/<modality>/<stem>.<ext>: files pair by stem; optional labels.csv and train/ test/ folders"))
    register(mmbind.DatasetSpec(
        "manifest", GENERIC_MODALITIES, mmbind.lazy("mmbind_plugins.datasets.manifest:load_manifest"),
        "a CSV or JSONL of pairs: one column per modality, optional label, split and key"))
    register(mmbind.DatasetSpec(
        "hf-datasets", GENERIC_MODALITIES, mmbind.lazy("mmbind_plugins.datasets.hf:load_hf_dataset"),
        "a local Hugging Face dataset (save_to_disk folder or Parquet files): one column per modality"))
    register(mmbind.DatasetSpec(
        "esc50", ("audio",), mmbind.lazy("mmbind_plugins.datasets.esc50:load_esc50"),
        "ESC-50 environmental sounds (audio/*.wav, meta/esc50.csv); 50 named classes, test fold"))
    register(mmbind.DatasetSpec(
        "llvip", ("image", "thermal"), mmbind.lazy("mmbind_plugins.datasets.llvip:load_llvip"),
        "LLVIP visible/infrared pairs (visible/{train,test}, infrared/{train,test})"))
    register(mmbind.DatasetSpec(
        "nyu-depth-v2", ("image", "depth"), mmbind.lazy("mmbind_plugins.datasets.nyu:load_nyu_depth_v2"),
        "NYU Depth v2 labelled .mat (HDF5): RGB + depth in metres, scene-type classes"))
    register(mmbind.DatasetSpec(
        "sun-rgbd", ("image", "depth"), mmbind.lazy("mmbind_plugins.datasets.sunrgbd:load_sun_rgbd"),
        "SUN RGB-D scene folders: RGB + decoded depth PNGs (metres), scene classes"))
    register(mmbind.DatasetSpec(
        "imu-windows", ("imu",), mmbind.lazy("mmbind_plugins.datasets.imu_windows:load_imu_windows"),
        "labelled IMU windows: class folders of CSV/NPY, one long CSV with a window column, or an aeon .ts"))
    register(mmbind.DatasetSpec(
        "fashion-mnist", ("image", "text"), mmbind.lazy("mmbind_plugins.datasets.fashion_mnist:load_fashion_mnist"),
        "the 70,000 real Fashion-MNIST images (IDX files, official split) + class-name text prompts"))
