"""`mmbind check-plugin` / mmbind.testing: first-party plugins pass; a plugin with the classic
mistakes fails exactly the checks that name them."""
from __future__ import annotations

import types

import numpy as np
import pytest
from click.testing import CliRunner

import mmbind
from mmbind.testing import assert_plugin_conforms, check_plugin, registered_plugin

FIRST_PARTY = ["image", "text", "audio", "depth", "thermal", "imu", "digits", "losses", "datasets", "digits_world"]


@pytest.mark.parametrize("name", FIRST_PARTY)
def test_first_party_plugins_conform(name):
    report = assert_plugin_conforms(name)
    assert report.checks and not report.failures()


def sloppy_plugin() -> types.ModuleType:
    """A sensor modality with three classic mistakes: a private random generator in the train
    transform, NaN accepted, and .npy files loaded with pickles allowed."""
    module = types.ModuleType("sloppy_sensor")
    module.PLUGIN_API = mmbind.PLUGIN_API
    private = np.random.default_rng()  # not the global generator: resume cannot replay it

    def load(x):
        if isinstance(x, str):
            if not x.endswith(".npy"):
                raise mmbind.InputError(f"{x}: expected a .npy file")
            try:
                return np.load(x, allow_pickle=True)  # the mistake: runs pickles from user files
            except (OSError, ValueError, EOFError) as error:
                raise mmbind.InputError(f"{x}: unreadable ({error})") from error
        array = np.asarray(x, dtype=np.float32)
        if array.ndim != 2:
            raise mmbind.InputError(f"array of shape {array.shape}: expected (channels, time)")
        return array  # the mistake: NaN passes

    def transform(train=False):
        import torch

        def apply(x):
            # a continuous draw: two runs never agree by chance (a shift of 0-3 did, one time in four)
            gain = 1.0 + float(private.random()) if train else 1.0
            return torch.as_tensor(np.nan_to_num(x)[:, :16] * gain)

        return apply

    def encoder():
        import torch.nn as nn

        net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16, 8))
        net.output_dim = 8
        return net

    @mmbind.hookimpl
    def register_modalities(register):
        register(mmbind.Modality("sloppy", load, transform, default_encoder="sloppy-linear", extensions=(".npy",),
                                 example_inputs=lambda: [np.arange(60, dtype=np.float32).reshape(3, 20), np.ones((3, 20), np.float32)]))

    @mmbind.hookimpl
    def register_encoders(register):
        register(mmbind.EncoderSpec("sloppy-linear", "sloppy", encoder))

    module.register_modalities = register_modalities
    module.register_encoders = register_encoders
    return module


def test_a_sloppy_plugin_fails_the_checks_that_name_its_mistakes():
    with registered_plugin(sloppy_plugin(), name="sloppy") as name:
        report = check_plugin(name)
    failed = {check.name: check.detail for check in report.failures()}
    assert set(failed) == {
        "modality sloppy: train transform draws only from the global generators",
        "modality sloppy: an array with NaN values raises InputError naming it",
        "modality sloppy: a pickled .npy file (never unpickled) raises InputError naming it",
    }, report.summary()
    assert "unpickled a user file" in failed["modality sloppy: a pickled .npy file (never unpickled) raises InputError naming it"]
    passed = {check.name for check in report.checks if check.passed}
    assert "modality sloppy: collate + default encoder 'sloppy-linear' give (B, output_dim), finite" in passed
    with pytest.raises(AssertionError, match="train transform draws only from the global generators"):
        with registered_plugin(sloppy_plugin(), name="sloppy"):
            assert_plugin_conforms("sloppy")


def test_registered_plugin_is_gone_after_the_block_and_the_cli_reports_failures():
    with registered_plugin(sloppy_plugin(), name="sloppy"):
        assert "sloppy" in mmbind.list_modalities()
        from mmbind.cli import _register_builtin_commands, cli

        _register_builtin_commands()
        result = CliRunner().invoke(cli, ["check-plugin", "sloppy"])
        assert result.exit_code == 1 and "FAIL" in result.output
    assert "sloppy" not in mmbind.list_modalities()
