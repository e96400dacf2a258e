"""Streamed binding under torchrun: record the sample ids every step of each rank trains on.

Started by tests/test_streaming.py with 2 gloo processes. Usage: stream_worker.py DIR (DIR/shards
holds the toy shards; DIR/seen-rankN.json gets, per epoch, the ids of each step's samples).
"""
import json
import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import toy_plugin  # noqa: E402
from mmbind import distributed as dist  # noqa: E402
from mmbind.plugin import manager as plugins  # noqa: E402


def main(out: Path) -> None:
    from mmbind.recipe import parse_recipe
    from mmbind.training import Trainer
    from mmbind.training.bind import BindStage

    plugins.pm.register(toy_plugin, name="toy")
    data = tomllib.loads(toy_plugin.RECIPE.format(run_dir=out / "run", epochs=2))
    del data["anchor"]["pretrain"]
    data["data"] = {"dataset": "webdataset", "options": {"path": str(out / "shards")}}
    data["bind"].update({"batch_size": 16, "num_workers": 2})
    seen: list[list[list[int]]] = [[], []]
    step = BindStage.step

    def recording(self, batch, epoch):
        seen[epoch].append(batch["toy-b"].index.tolist())
        return step(self, batch, epoch)

    BindStage.step = recording
    Trainer(parse_recipe(data), progress=False).fit()
    (out / f"seen-rank{dist.rank()}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
