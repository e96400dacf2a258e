"""Data larger than memory: WebDataset shards, streamed binding, mid-epoch resume, the anchor
cache on streamed data, the Hugging Face datasets adapter."""
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import mmbind
import toy_plugin as toy
from test_user_datasets import paired_root  # noqa: F401  (a fixture: real spoken digits + IMU CSVs)

TESTS = Path(__file__).parent
pytestmark = pytest.mark.usefixtures("toy_plugin")


def write_toy_shards(out: Path, n_per_class: int = 40, shard_size: int = 50) -> dict:
    from mmbind_plugins.shards.writer import write_shards

    return write_shards(toy.toy_clusters(n_per_class=n_per_class), "toy-a", out, shard_size=shard_size)


def streamed_recipe(tmp_path: Path, shards: Path, name: str = "run", epochs: int = 2, **bind):
    from mmbind.recipe import parse_recipe

    data = tomllib.loads(toy.RECIPE.format(run_dir=tmp_path / name, epochs=epochs))
    del data["anchor"]["pretrain"]
    data["data"] = {"dataset": "webdataset", "options": {"path": str(shards)}}
    data["bind"].update({"batch_size": 16, **bind})
    return parse_recipe(data)


def test_shards_hold_every_split_and_pair_each_sample_with_a_matching_anchor(tmp_path):
    original = toy.toy_clusters(n_per_class=40)
    index = write_toy_shards(tmp_path / "shards")
    assert index["splits"]["train"]["toy-b"]["counts"] == [50] * 8
    data = mmbind.load_dataset("webdataset", path=str(tmp_path / "shards"))
    test = data.splits["test"]["toy-b"]  # not streamed: read into memory, in order
    assert isinstance(test, mmbind.ModalitySamples)
    np.testing.assert_array_equal(np.stack(test.inputs), np.stack(original.splits["test"]["toy-b"].inputs))
    assert list(test.labels) == list(original.splits["test"]["toy-b"].labels)
    stream = data.splits["train"]["toy-b"]
    assert isinstance(stream, mmbind.SampleStream) and len(stream) == 400
    anchors = original.splits["train"]["toy-a"]
    anchor_label = {bytes(np.asarray(x).tobytes()): label for x, label in zip(anchors.inputs, anchors.labels)}
    records = [r for shard in stream.shards for r in stream.read(shard)]
    assert len(records) == 400
    for record in records:  # the anchor is a real anchor sample of the same class (toy keys are classes)
        assert anchor_label[record["anchor"].tobytes()] == record["label"]


def test_shards_write_command_from_a_dataset_name(tmp_path):
    from mmbind.cli import cli, _register_builtin_commands
    from mmbind.plugin.manager import register_commands

    _register_builtin_commands()
    register_commands(cli)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["shards", "write", "toy-clusters", str(out), "--anchor", "toy-a",
                                      "--shard-size", "100", "--option", "n_per_class=20"])
    assert result.exit_code == 0, result.output
    assert "train/toy-b: 200 samples in 2 shard(s)" in result.output
    index = json.loads((out / "index.json").read_text())
    assert index["anchor"] == "toy-a" and sorted(index["splits"]) == ["test", "train"]
    again = CliRunner().invoke(cli, ["shards", "write", "toy-clusters", str(out), "--anchor", "toy-a"])
    assert again.exit_code != 0 and "already holds shards" in again.output


def epoch_ids(stage, epoch: int, num_workers: int, first_step: int = 0) -> list[list[int]]:
    loader = stage.loader(num_workers, torch.device("cpu")).epoch(epoch, first_step)
    return [batch["toy-b"].index.tolist() for batch in loader]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_streamed_epoch_sees_each_sample_at_most_once_and_resumes_at_any_step(tmp_path, num_workers):
    from mmbind.binder import Binder
    from mmbind.training import Trainer

    write_toy_shards(tmp_path / "shards")
    recipe = streamed_recipe(tmp_path, tmp_path / "shards", num_workers=num_workers)
    trainer = Trainer(recipe, progress=False)
    binder = Binder(recipe.binder_config())
    binder.freeze_anchor()
    stage = trainer.bind_stage(binder)
    lanes = max(1, num_workers)  # 8 shards of 50 over the lanes, in batches of 16
    assert stage.steps == {1: 400 // 16, 2: 200 // 16 * 2}[lanes]
    ids = epoch_ids(stage, 0, num_workers)
    flat = [i for batch in ids for i in batch]
    assert len(ids) == stage.steps and len(flat) == len(set(flat)) and len(flat) >= 400 - lanes * 16
    assert epoch_ids(stage, 0, num_workers) == ids  # the order depends on the seed alone
    assert epoch_ids(stage, 1, num_workers) != ids  # and changes every epoch
    assert epoch_ids(stage, 0, num_workers, first_step=5) == ids[5:]  # resuming skips exactly the steps done


def test_streamed_training_resumed_mid_epoch_ends_with_identical_weights(tmp_path):
    from mmbind.training import Trainer

    write_toy_shards(tmp_path / "shards")

    def recipe(name):
        return streamed_recipe(tmp_path, tmp_path / "shards", name, epochs=2, num_workers=2, checkpoint_every=4)

    straight = Trainer(recipe("straight"), progress=False).fit()

    class Killed(Exception):
        pass

    from mmbind.training.bind import BindStage

    killed = Trainer(recipe("killed"), progress=False)
    stage_step = BindStage.step

    def step(self, batch, epoch):
        if self.global_step == 30:  # 6 steps into epoch 2 (24 an epoch): its last checkpoint is at step 4
            raise Killed
        return stage_step(self, batch, epoch)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("mmbind.training.bind.BindStage.step", step)
        with pytest.raises(Killed):
            killed.fit()
    checkpoints = sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir())
    assert checkpoints[-1] == "epoch-0001-step-000004", checkpoints
    resumed = Trainer(recipe("killed"), progress=False).fit(resume=True)
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    steps = [json.loads(line)["step"] for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["stage"] == "bind"]
    assert steps == list(range(1, len(steps) + 1))
    # the anchor cache is on disk, keyed by content: every distinct anchor sample once
    import h5py

    with h5py.File(tmp_path / "straight" / "anchor-cache.h5") as f:
        (group,) = f.values()
        hashes = group["hashes"][:]
    assert len(hashes) == len(set(hashes.tolist())) > 0


def test_the_anchor_cache_serves_streamed_batches_by_content(tmp_path):
    from mmbind.binder import Binder
    from mmbind.hashing import content_hash
    from mmbind.recipe import parse_recipe
    from mmbind.training.anchor_cache import AnchorCache

    recipe = parse_recipe(tomllib.loads(toy.RECIPE.format(run_dir=tmp_path, epochs=1)))
    binder = Binder(recipe.binder_config()).eval()
    x = [np.random.default_rng(i).normal(size=16).astype(np.float32) for i in range(6)]
    hashes = [content_hash(v, "toy-a") for v in x]
    calls = []

    def compute(rows):
        def run():
            calls.append(len(rows))
            return binder.encode([x[i] for i in rows], "toy-a", convert_to_numpy=False)
        return run

    cache = AnchorCache(tmp_path / "cache.h5", per_rank=True)
    first = cache.batch(binder, hashes[:4], compute([0, 1, 2, 3]))
    again = AnchorCache(tmp_path / "cache.h5", per_rank=True)  # a new process: from the file
    mixed = again.batch(binder, [hashes[3], hashes[4], hashes[0]], compute([3, 4, 0]))
    assert calls == [4, 3]  # one miss (4) computes the batch
    torch.testing.assert_close(mixed[0], first[3])
    torch.testing.assert_close(mixed[2], first[0])
    hit = again.batch(binder, [hashes[4], hashes[1]], compute([4, 1]))
    assert calls == [4, 3] and torch.equal(hit[0], mixed[1])


def test_streamed_binding_under_two_processes_sees_no_sample_twice(tmp_path):
    write_toy_shards(tmp_path / "shards")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(TESTS / "stream_worker.py"), str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    seen = [json.loads((tmp_path / f"seen-rank{r}.json").read_text()) for r in range(2)]
    assert len(seen[0]) == len(seen[1]) == 2  # epochs
    for epoch in range(2):
        rank0, rank1 = seen[0][epoch], seen[1][epoch]
        assert len(rank0) == len(rank1) > 0  # the ranks step together
        ids = [i for batch in rank0 + rank1 for i in batch]
        assert len(ids) == len(set(ids)), "a sample was seen twice in one epoch"
        assert len(ids) >= 400 - 2 * 2 * 16  # at most one short batch dropped per lane
    assert seen[0][0] != seen[0][1]


def test_streamed_anchor_cannot_be_pretrained(tmp_path):
    from mmbind.training import Trainer

    write_toy_shards(tmp_path / "shards")
    from mmbind.recipe import PretrainConfig

    recipe = streamed_recipe(tmp_path, tmp_path / "shards")
    recipe.pretrain = PretrainConfig()
    with pytest.raises(ValueError, match="pretrain"):
        Trainer(recipe, progress=False)


def toy_hf_dataset():
    import datasets

    original = toy.toy_clusters(n_per_class=10)
    features = datasets.Features({"toy-a": datasets.Sequence(datasets.Value("float32")),
                                  "toy-b": datasets.Sequence(datasets.Value("float32")),
                                  "label": datasets.ClassLabel(names=original.class_names)})

    def table(split):
        samples = original.splits[split]
        return datasets.Dataset.from_dict({"toy-a": [x.tolist() for x in samples["toy-a"].inputs],
                                           "toy-b": [x.tolist() for x in samples["toy-b"].inputs],
                                           "label": list(samples["toy-a"].labels)}, features=features)

    return original, datasets.DatasetDict({"train": table("train"), "test": table("test")})


@pytest.mark.parametrize("layout", ["save_to_disk", "parquet"])
def test_hf_datasets_adapter_reads_a_local_dataset(tmp_path, layout):
    original, hf = toy_hf_dataset()
    if layout == "save_to_disk":
        hf.save_to_disk(str(tmp_path / "hf"))
    else:
        (tmp_path / "hf").mkdir()
        for split, table in hf.items():
            table.to_parquet(str(tmp_path / "hf" / f"{split}-00000.parquet"))
    data = mmbind.load_dataset("hf-datasets", path=str(tmp_path / "hf"))
    assert sorted(data.splits) == ["test", "train"] and sorted(data.splits["train"]) == ["toy-a", "toy-b"]
    for split in ("train", "test"):
        got, want = data.splits[split]["toy-b"], original.splits[split]["toy-b"]
        np.testing.assert_array_equal(np.stack([got.inputs[i] for i in range(len(got))]), np.stack(want.inputs))
        assert list(got.labels) == list(want.labels)
        assert got.keys[0] == data.splits[split]["toy-a"].keys[0]  # a row pairs with itself
    if layout == "save_to_disk":  # a ClassLabel's names are the class names
        assert data.class_names == original.class_names
    from mmbind_plugins.shards.writer import write_shards  # and it streams like any dataset

    index = write_shards(data, "toy-a", tmp_path / "shards", shard_size=25)
    assert sum(index["splits"]["train"]["toy-b"]["counts"]) == 100


def test_the_shard_reader_reads_what_webdatasets_own_reader_reads(tmp_path):
    from webdataset.tariterators import tarfile_samples

    from mmbind_plugins.shards.codec import decode_record
    from mmbind_plugins.shards.reader import read_shard

    write_toy_shards(tmp_path / "shards")
    shard = str(tmp_path / "shards" / "train" / "toy-b" / "000003.tar")
    ours = list(read_shard(shard))
    theirs = [decode_record(files) for files in tarfile_samples([{"url": shard}])]
    assert len(ours) == len(theirs) == 50
    for a, b in zip(ours, theirs):
        assert a["key"] == b["key"] and a["label"] == b["label"]
        np.testing.assert_array_equal(a["input"], b["input"])
        np.testing.assert_array_equal(a["anchor"], b["anchor"])


def test_file_inputs_are_stored_as_their_modality_loads_them(tmp_path, paired_root):
    """Real spoken digits (.wav) paired with IMU CSVs by stem: the audio record is the loaded
    waveform and its rate, and transforms to exactly what the file does."""
    from mmbind_plugins.shards.writer import write_shards

    root = paired_root
    with pytest.warns(RuntimeWarning, match="orphan"):
        data = mmbind.load_dataset("paired-folder", root=str(root), test_fraction=0.2, seed=1)
    write_shards(data, "imu", tmp_path / "shards", shard_size=4)
    streamed = mmbind.load_dataset("webdataset", path=str(tmp_path / "shards"))
    audio = mmbind.get_modality("audio")
    transform = audio.transform()
    test = streamed.splits["test"]["audio"]
    for original, stored in zip(data.splits["test"]["audio"].inputs, test.inputs):
        assert isinstance(stored, tuple) and isinstance(stored[1], int)  # (samples, sample rate)
        torch.testing.assert_close(transform(audio.load(stored)), transform(audio.load(original)), rtol=0, atol=0)
    record = next(iter(streamed.splits["train"]["audio"].read(streamed.splits["train"]["audio"].shards[0])))
    assert record["anchor"].ndim == 2  # the paired IMU window, loaded from its CSV
