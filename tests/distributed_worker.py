"""Run one training step of the toy recipe and save the loss and the gradients.

Started by tests/test_distributed.py either as one process (global batch) or under torchrun
(each rank a share of the same global batch). Dropout and augmentation are off, so both must
give the same loss and gradients. Usage: distributed_worker.py OUT_DIR GLOBAL_BATCH
"""
import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import toy_plugin  # noqa: E402
from mmbind import distributed as dist  # noqa: E402
from mmbind.plugin import manager as plugins  # noqa: E402

CONFIGS = [  # (name, loss, loss_options, accumulation_steps, head, shared_projection)
    ("infonce", "infonce", {}, 1, "mlp", False),
    ("infonce-gradcache", "infonce", {}, 2, "mlp", False),
    ("infonce-label-positives", "infonce", {"positives": "label"}, 1, "mlp", False),
    ("siglip", "siglip", {}, 1, "linear", False),
    ("infonce-shared-projection", "infonce", {}, 2, "mlp", True),
]


def ready_stage(recipe, dropout: bool = True):
    """The recipe's BindStage on a fresh binder (seed 0), ready to step; dropout off if asked."""
    from mmbind.binder import Binder
    from mmbind.training import Trainer

    trainer = Trainer(recipe, progress=False)
    torch.manual_seed(0)
    binder = Binder(recipe.binder_config())
    binder.freeze_anchor()
    if not dropout:
        for module in binder.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    return trainer.bind_stage(binder)


def first_batch(stage):
    """The collated batch of the first step of epoch 0 (this rank's share)."""
    return stage.dataset.collate(stage.dataset.__getitems__(stage.plan(0)[0]))


def grads(stage) -> dict[str, torch.Tensor]:
    """The gradients of the binder's and the losses' parameters, by name."""
    named = list(stage.binder.named_parameters()) + list(stage.losses.named_parameters())
    return {name: p.grad.detach().clone() for name, p in named if p.grad is not None}


def one_step(out: Path, global_batch: int, loss: str, loss_options: dict, accumulation: int,
             head: str, shared_projection: bool = False) -> dict[str, torch.Tensor]:
    from mmbind.recipe import parse_recipe

    text = toy_plugin.RECIPE.format(run_dir=out / "run", epochs=1)
    data = tomllib.loads(text)
    data["anchor"].pop("pretrain")
    data["modalities"]["toy-b"].update(head=head, augment=False)
    data["bind"].update(batch_size=global_batch // dist.env_world_size(), loss=loss,
                        loss_options=loss_options, accumulation_steps=accumulation,
                        shared_projection=shared_projection)
    stage = ready_stage(parse_recipe(data, "toy.toml"), dropout=False)
    losses = stage.forward_backward(first_batch(stage))
    return {"loss": dist.all_mean(losses["toy-b"]).reshape(1)} | {f"grad/{k}": v for k, v in grads(stage).items()}


def main() -> None:
    out, global_batch = Path(sys.argv[1]), int(sys.argv[2])
    plugins.pm.register(toy_plugin, name="toy")
    plugins.reset()
    for name, loss, loss_options, accumulation, head, shared_projection in CONFIGS:
        result = one_step(out, global_batch, loss, loss_options, accumulation, head, shared_projection)
        if dist.is_main():
            save_file(result, str(out / f"{name}-world{dist.world_size()}.safetensors"))
    dist.barrier()  # leave together: a rank exiting early closes the others' connections


if __name__ == "__main__":
    main()
