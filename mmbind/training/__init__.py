"""Training: the Trainer (anchor pretraining, binding), its data path, caches and checkpoints.

trainer.py runs the stages; pretrain.py and bind.py are the stages, loop.py the epoch loop they
share, plan.py what each step trains on, data.py the loading, checkpoints.py the run folder,
metrics.py metrics.jsonl and the epoch log, optim.py the optimizer and schedule, features.py and
anchor_cache.py what binding computes once, gradcache.py accumulation that keeps every negative.
"""
from mmbind.training.data import BindDataset
from mmbind.training.trainer import Trainer

__all__ = ["Trainer", "BindDataset"]
