"""Training: the Trainer (anchor pretraining, binding), its data path, caches and checkpoints."""
from mmbind.training.trainer import BindDataset, Trainer

__all__ = ["Trainer", "BindDataset"]
