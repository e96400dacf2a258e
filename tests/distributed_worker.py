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

CONFIGS = [  # (name, loss, loss_options, accumulation_steps, head)
    ("infonce", "infonce", {}, 1, "mlp"),
    ("infonce-gradcache", "infonce", {}, 2, "mlp"),
    ("infonce-label-positives", "infonce", {"positives": "label"}, 1, "mlp"),
    ("siglip", "siglip", {}, 1, "linear"),
]


def one_step(out: Path, global_batch: int, loss: str, loss_options: dict, accumulation: int,
             head: str) -> dict[str, torch.Tensor]:
    from mmbind.binder import Binder
    from mmbind.pairing import pair_index
    from mmbind.recipe import parse_recipe
    from mmbind.training.trainer import BindDataset, Trainer

    text = toy_plugin.RECIPE.format(run_dir=out / "run", epochs=1)
    data = tomllib.loads(text)
    data["anchor"].pop("pretrain")
    data["modalities"]["toy-b"].update(head=head, augment=False)
    data["bind"].update(batch_size=global_batch // dist.env_world_size(), loss=loss,
                        loss_options=loss_options, accumulation_steps=accumulation)
    recipe = parse_recipe(data, "toy.toml")
    trainer = Trainer(recipe, progress=False)
    torch.manual_seed(0)
    trainer.binder = Binder(recipe.binder_config())
    trainer.binder.freeze_anchor()
    for module in trainer.binder.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    trainer.setup_bind()
    split = trainer.train_split
    pairs = {"toy-b": pair_index(split["toy-a"].keys, split["toy-b"].keys)}
    items = trainer._plan_epoch(0, pairs, steps=1)[0]
    dataset = BindDataset(trainer.binder, split, with_anchor_input=False)
    batch = dataset.collate(dataset.__getitems__(items))
    trainer.binder.train()
    losses = trainer.forward_backward(batch)
    result = {"loss": dist.all_mean(losses["toy-b"]).reshape(1)}
    for name, p in list(trainer.binder.named_parameters()) + list(trainer.losses.named_parameters()):
        if p.grad is not None:
            result[f"grad/{name}"] = p.grad.detach().clone()
    return result


def main() -> None:
    out, global_batch = Path(sys.argv[1]), int(sys.argv[2])
    plugins.pm.register(toy_plugin, name="toy")
    plugins.reset()
    for name, loss, loss_options, accumulation, head in CONFIGS:
        result = one_step(out, global_batch, loss, loss_options, accumulation, head)
        if dist.is_main():
            save_file(result, str(out / f"{name}-world{dist.world_size()}.safetensors"))
    dist.barrier()  # leave together: a rank exiting early closes the others' connections


if __name__ == "__main__":
    main()
