"""Devices and precision: resolution, errors, and encode on every precision (CUDA where present)."""
import numpy as np
import pytest
import torch

import fake_world
from mmbind.devices import DeviceError, autocast, resolve_device


@pytest.fixture(scope="module")
def binder(tmp_path_factory):
    with fake_world.one_thread(), fake_world.registered():
        _, trained, data = fake_world.train(tmp_path_factory.mktemp("devices") / "run", epochs=1, supervised=False)
        yield trained, data.splits["test"]["fw-audio"].inputs[:20]


def test_auto_picks_the_best_device_and_bad_names_say_what_exists():
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == expected and resolve_device(None).type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match="expected one of auto, cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA device"):
            resolve_device("cuda:0")
    with pytest.raises(DeviceError, match="fp16' needs a CUDA or MPS device"):
        autocast(torch.device("cpu"), "fp16")


def test_encode_precision_and_return_types(binder):
    model, inputs = binder
    with fake_world.registered():
        fp32 = model.encode(inputs, "fw-audio", device="cpu")
        bf16 = model.encode(inputs, "fw-audio", precision="bf16")
        tensor = model.encode(inputs, "fw-audio", convert_to_tensor=True)
    assert isinstance(fp32, np.ndarray) and fp32.dtype == np.float32
    assert isinstance(tensor, torch.Tensor) and tensor.device.type == "cpu"
    assert bf16.dtype == np.float32 and np.allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-5)
    cosine = (fp32 * bf16).sum(axis=1)
    assert cosine.min() > 0.99  # bf16 keeps the direction
    assert not np.array_equal(fp32, bf16)  # and did run in bf16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_encode_on_cuda_matches_the_cpu(binder, precision):
    model, inputs = binder
    with fake_world.registered():
        cpu = model.encode(inputs, "fw-audio", device="cpu")
        cuda = model.encode(inputs, "fw-audio", device="cuda", precision=precision)
        model.to("cpu")
    tolerance = 1e-4 if precision == "fp32" else 2e-2
    assert np.abs(cpu - cuda).max() < tolerance


COMMANDS_THAT_RUN_A_MODEL = ("train", "run", "eval", "embed", "search", "arith")


def test_every_command_that_runs_a_model_takes_device():
    from click.testing import CliRunner

    from mmbind.cli import _register_builtin_commands, cli

    _register_builtin_commands()
    for name in COMMANDS_THAT_RUN_A_MODEL:
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and "--device auto|cpu|cuda[:N]|mps" in result.output, name


def test_a_device_this_machine_lacks_is_a_one_line_error(tmp_path, toy_plugin):
    from click.testing import CliRunner

    from mmbind.cli import _register_builtin_commands, cli

    _register_builtin_commands()
    recipe = tmp_path / "toy.toml"
    recipe.write_text(toy_plugin.RECIPE.format(run_dir=tmp_path / "run", epochs=1))
    result = CliRunner().invoke(cli, ["train", str(recipe), "--device", "tpu"])
    assert result.exit_code == 1 and "device 'tpu': expected one of auto, cpu, cuda" in result.output
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_the_recipe_device_defaults_to_auto(toy_plugin):
    import tomllib

    from mmbind.recipe import parse_recipe

    recipe = parse_recipe(tomllib.loads(toy_plugin.RECIPE.format(run_dir="x", epochs=1)))
    assert recipe.device == "auto"


def toy_recipe(tmp_path, toy_plugin, precision: str, device: str):
    import tomllib

    from mmbind.recipe import parse_recipe

    data = tomllib.loads(toy_plugin.RECIPE.format(run_dir=tmp_path / precision, epochs=1))
    del data["anchor"]["pretrain"]
    data["device"] = device
    data["bind"].update({"precision": precision, "steps_per_epoch": 4})
    return parse_recipe(data)


def test_fp16_training_on_the_cpu_says_what_to_use(tmp_path, toy_plugin):
    from mmbind.training import Trainer

    with pytest.raises(DeviceError, match="fp16' needs a CUDA or MPS device"):
        Trainer(toy_recipe(tmp_path, toy_plugin, "fp16", "cpu"), progress=False).fit()


def test_bf16_training_on_the_cpu_runs_under_autocast(tmp_path, toy_plugin):
    from mmbind.training import Trainer

    fp32 = Trainer(toy_recipe(tmp_path, toy_plugin, "fp32", "cpu"), progress=False).fit()
    bf16 = Trainer(toy_recipe(tmp_path, toy_plugin, "bf16", "cpu"), progress=False).fit()
    a, b = fp32.state_dict(), bf16.state_dict()
    changed = [k for k in a if not torch.equal(a[k], b[k])]
    assert changed and all(torch.isfinite(b[k]).all() for k in b)  # bf16 ran, and trained sanely


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_on_cuda_in_every_precision(tmp_path, toy_plugin, precision):
    from mmbind.training import Trainer

    trainer = Trainer(toy_recipe(tmp_path, toy_plugin, precision, "cuda"), progress=False)
    binder = trainer.fit()
    assert next(binder.parameters()).device.type == "cuda"
    assert all(torch.isfinite(p).all() for p in binder.parameters())
    state = torch.load(trainer.run.last_checkpoint() / "trainer_state.pt", weights_only=True)
    assert (state["scaler"] is not None) == (precision == "fp16")  # fp16 keeps its gradient scaler
