"""The built-in trackers by the name ``[log] trackers`` uses: "module:class", imported only when a
recipe names one (this module imports nothing, so the recipe check can use it freely)."""

TRACKERS = {
    "tensorboard": "mmbind.tracking.tensorboard_tracker:TensorBoardTracker",
    "wandb": "mmbind.tracking.wandb_tracker:WandbTracker",
}
