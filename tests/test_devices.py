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
