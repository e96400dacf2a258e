"""WebDataset tar shards: the "webdataset" dataset (training streams from the shards, so the data
may be larger than memory) and ``mmbind shards write``, which writes any dataset's splits as
shards. Layout and record format: docs/devices-and-scale.md.

Only hook implementations live here; webdataset is imported when shards are read or written.
"""
from __future__ import annotations

import mmbind

PLUGIN_API = 1  # the mmbind plugin contract this plugin is written for
SHARD_SIZE = 1000  # samples per shard: a shard is read (and shuffled) whole, so it must fit in memory


@mmbind.hookimpl
def register_datasets(register):
    register(mmbind.DatasetSpec(
        "webdataset", ("*",), mmbind.lazy("mmbind_plugins.shards.reader:load_shards"),
        "WebDataset tar shards written by `mmbind shards write`; the train split streams from disk"))


@mmbind.hookimpl
def register_commands(cli):
    from mmbind_plugins.shards.command import shards

    cli.add_command(shards)
