"""Data helpers of the core: composing datasets (a plugin's modality added to a built-in
dataset, paired by class)."""
from mmbind.data.compose import compose_datasets

__all__ = ["compose_datasets"]
