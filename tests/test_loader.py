"""The bind loader's mechanics: what it precomputes once changes nothing it yields."""
import pytest
import torch

import mmbind
from mmbind.training.data import seeded

SPLIT_TRANSFORMS = ["image", "digits", "audio", "imu", "depth", "thermal"]


@pytest.mark.parametrize("modality", SPLIT_TRANSFORMS)
@pytest.mark.parametrize("train", [False, True])
def test_finish_of_precompute_is_the_transform(modality, train):
    spec = mmbind.get_modality(modality)
    transform = spec.transform(train=train)
    for number, example in enumerate(spec.example_inputs()):
        raw = spec.load(example)
        with seeded(number):
            whole = transform(raw)
        state = torch.get_rng_state()
        fixed = transform.precompute(raw)
        assert torch.equal(torch.get_rng_state(), state), "precompute drew from torch's generator"
        kept = fixed.clone()
        with seeded(number):
            split = transform.finish(fixed)
        torch.testing.assert_close(split, whole, rtol=0, atol=0)
        torch.testing.assert_close(fixed, kept, rtol=0, atol=0)  # finish leaves the cached part alone


@pytest.mark.parametrize("train", [False, True])
def test_finish_of_precompute_is_the_transform_with_the_pillow_resize(train):
    spec = mmbind.get_modality("image")
    transform = spec.transform(train=train, resize_backend="pil")
    for number, example in enumerate(spec.example_inputs()):
        raw = spec.load(example)
        with seeded(number):
            whole = transform(raw)
        with seeded(number):
            split = transform.finish(transform.precompute(raw))
        torch.testing.assert_close(split, whole, rtol=0, atol=0)
