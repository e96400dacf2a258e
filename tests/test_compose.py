"""Composing datasets: a plugin's modality added to a dataset, paired by class."""
import pytest

import mmbind
from mmbind.data.compose import ComposeError
from mmbind.pairing import pair_index

S = mmbind.ModalitySamples


def base() -> mmbind.BindingData:
    return mmbind.BindingData({
        "train": {"image": S(["i0", "i1", "i2"], [0, 1, 1], ["0/red", "1/blue", "1/red"]),
                  "text": S(["zero", "one"], [0, 1], ["0", "1"])},
        "test": {"image": S(["t0"], [0], ["0/red"])},
    }, ["zero", "one"], simulated=frozenset(), description="digits")


def extra(**kw) -> mmbind.BindingData:
    splits = {"train": {"braille": S(["b0", "b1", "b2"], [1, 0, -1], ["x", "y", "z"])},
              "test": {"braille": S(["b3"], [0], ["w"])}, "other": {"braille": S(["b4"], [0], ["v"])}}
    return mmbind.BindingData(splits, kw.get("names", ["One", "zero"]), simulated=frozenset({"braille"}))


def test_compose_renumbers_classes_by_name_and_pairs_by_class():
    data = mmbind.compose_datasets(base(), extra())
    braille = data.splits["train"]["braille"]
    assert braille.labels == [0, 1, -1] and braille.keys == ["0", "1", "unlabelled/2"]
    assert data.class_names == ["zero", "one"] and data.simulated == {"braille"}
    assert set(data.splits) == {"train", "test"}  # a split the base lacks has nothing to pair with
    anchors = data.splits["train"]["image"].keys
    assert pair_index(anchors, braille.keys) == [[0], [1, 2], []]
    assert data.splits["train"]["text"].keys == ["0", "1"]  # the base is untouched


@pytest.mark.parametrize("change, message", [
    (dict(extra=extra(names=["one", "seven"])), "classes 'seven' are not among base's"),
    (dict(modalities=["sonar"]), "has no modality 'sonar'"),
    (dict(base_modality="braille"), "already has 'braille'"),
    (dict(keys=["a", "b", "c"]), "keys must start with the class index"),
])
def test_compose_refuses_what_cannot_pair(change, message):
    b = base()
    if "base_modality" in change:
        b.splits["train"]["braille"] = S(["x"], [0], ["0"])
    if "keys" in change:
        b.splits["train"]["image"] = S(["i0", "i1", "i2"], [0, 1, 1], change["keys"])
    with pytest.raises(ComposeError, match=message):
        mmbind.compose_datasets(b, change.get("extra", extra()), change.get("modalities"))
