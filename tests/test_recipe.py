import tomllib

import pytest

from mmbind.recipe import RecipeError, load_recipe, parse_recipe


def recipe_text(toy_plugin, tmp_path):
    return toy_plugin.RECIPE.format(run_dir=tmp_path / "run", epochs=1)


def parse(text):
    return parse_recipe(tomllib.loads(text), "r.toml")


def test_valid_recipe_resolves_defaults(toy_plugin, tmp_path):
    recipe = parse(recipe_text(toy_plugin, tmp_path))
    assert recipe.anchor == "toy-a" and recipe.bound == ["toy-b"]
    assert recipe.towers["toy-b"].encoder == "toy-b-mlp"  # the modality's default encoder
    assert recipe.towers["toy-a"].head == "none"
    assert recipe.bind.loss == "infonce" and recipe.pretrain.epochs == 2


@pytest.mark.parametrize("old,new,message", [
    ("batch_size = 32", "batch_size = 0", r"\[bind\] batch_size: expected an integer >= 1, got 0"),
    ("batch_size = 32", 'batch_size = "big"', r"\[bind\] batch_size: expected an integer, got 'big'"),
    ("lr = 3e-3", "lr = 3e-3\nbach_size = 2", r"unknown field 'bach_size'; did you mean 'batch_size'"),
    ('head = "mlp"', 'head = "deep"', r"\[modalities.toy-b\] head: expected one of 'linear', 'mlp'"),
    ('dataset = "toy-clusters"', 'dataset = "toy-cluster"', r"unknown dataset 'toy-cluster'; did you mean 'toy-clusters'"),
    ('encoder = "toy-a-mlp"', 'encoder = "toy-b-mlp"', r"'toy-b-mlp' encodes 'toy-b', not 'toy-a'"),
    ("warmup_steps = 5", 'warmup_steps = 5\nloss = "infonse"', r"\[bind\] loss: unknown loss 'infonse'"),
    ("[modalities.toy-b]", "[modalities.sonar]", r"unknown field 'sonar'.*allowed: toy-a, toy-b"),
    ('head = "mlp"', 'head = "mlp"\nloss_options = { positives = "class" }',
     r"\[modalities.toy-b\] loss_options: loss 'infonce' rejects \{'positives': 'class'\}.*'pair' or 'label'"),
    ("warmup_steps = 5", "warmup_steps = 5\nloss_options = { margin = 1 }",
     r"\[bind\] loss_options: loss 'infonce' rejects \{'margin': 1\}"),
])
def test_errors_name_the_field_and_what_is_allowed(toy_plugin, tmp_path, old, new, message):
    text = recipe_text(toy_plugin, tmp_path)
    assert old in text
    with pytest.raises(RecipeError, match=message) as error:
        parse(text.replace(old, new, 1))
    assert str(error.value).startswith("r.toml: ")


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("name = \n")
    with pytest.raises(RecipeError, match="bad.toml: not valid TOML"):
        load_recipe(tmp_path / "bad.toml")


def test_overrides_use_dotted_keys(toy_plugin, tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(recipe_text(toy_plugin, tmp_path))
    recipe = load_recipe(path, {"bind.epochs": 7, "modalities.toy-b.temperature": 0.05})
    assert recipe.bind.epochs == 7 and recipe.towers["toy-b"].temperature == 0.05


def test_every_recipe_field_is_documented():
    """docs/recipes.md names every field that the schema accepts."""
    import re
    from dataclasses import fields
    from pathlib import Path

    from mmbind.binder import TowerConfig
    from mmbind.recipe import BindConfig, EmbedConfig, EvalConfig, PretrainConfig

    doc = (Path(__file__).parent.parent / "docs" / "recipes.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", doc, flags=re.M))
    schema = {"name", "seed", "output_dir", "device", "threads", "dataset", "options", "modality"}
    for cls in (TowerConfig, PretrainConfig, BindConfig, EvalConfig, EmbedConfig):
        schema |= {f.name for f in fields(cls)}
    assert schema - documented == set(), f"fields missing from docs/recipes.md: {sorted(schema - documented)}"
