"""Embed the toy-b test inputs with mmbind.store.shard.embed_sharded (run by tests/test_shard.py, alone
or under torchrun). Usage: shard_worker.py STORE"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

import toy_plugin  # noqa: E402
from mmbind import distributed as dist  # noqa: E402
from mmbind.plugin import manager as plugins  # noqa: E402


def toy_binder():
    import tomllib

    from mmbind.binder import Binder
    from mmbind.recipe import parse_recipe

    recipe = parse_recipe(tomllib.loads(toy_plugin.RECIPE.format(run_dir="unused", epochs=1)), "toy.toml")
    torch.manual_seed(0)  # every rank builds the same binder
    return Binder(recipe.binder_config()).eval()


def items():
    samples = toy_plugin.toy_clusters(20).splits["test"]["toy-b"]
    return [{"input": x, "id": f"toy-{i}", "label": int(label)} for i, (x, label) in
            enumerate(zip(samples.inputs, samples.labels))]


def main() -> None:
    from mmbind.store.shard import embed_sharded

    plugins.pm.register(toy_plugin, name="toy")
    plugins.reset()
    result, count = embed_sharded(sys.argv[1], toy_binder(), "toy-b", items(), modality="toy-b", batch_size=8)
    if dist.is_main():
        print(json.dumps({"added": result.added, "skipped": result.skipped, "count": count,
                          "world": dist.world_size()}))
    dist.barrier()


if __name__ == "__main__":
    main()
