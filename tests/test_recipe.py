import json
import math
import tomllib

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from mmbind.recipe import BinderConfig, EvalConfig, RecipeError, TowerConfig, load_recipe, parse_assignments, parse_recipe


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
    # issue 16 item 5: numbers must be finite
    ("lr = 3e-3", "lr = inf", r"\[bind\] lr: expected a finite number, got inf"),
    ("lr = 3e-3", "lr = nan", r"\[bind\] lr: expected a finite number, got nan"),
    ("batch_size = 64", "batch_size = 64\nlr = -inf", r"\[anchor.pretrain\] lr: expected a finite number, got -inf"),
    # strict types: a string or a boolean is not a number
    ("batch_size = 32", 'batch_size = "32"', r"\[bind\] batch_size: expected an integer, got '32'"),
    ("batch_size = 32", "batch_size = true", r"\[bind\] batch_size: expected an integer, got true"),
    ("lr = 3e-3", "lr = 0", r"\[bind\] lr: expected a number > 0, got 0"),
    ('head = "mlp"', 'head = "mlp"\ntemperature = 5.0', r"\[modalities.toy-b\] temperature: expected a number <= 1, got 5.0"),
    ('head = "mlp"', 'head = "mlp"\naugment = "no"', r"\[modalities.toy-b\] augment: expected true or false, got 'no'"),
    ("options = { output_dim = 32 }", 'options = { output_dim = 32 }\nhead = "mlp"',
     r"\[anchor\] head: expected one of 'none', got 'mlp'"),
    ("epochs = 2\n", "epochs = 2\ntarget = []\n", r"\[anchor.pretrain\]: unknown field 'target'; did you mean 'targets'"),
    ('dataset = "toy-clusters"', 'dataset = ""', r"\[data\] dataset: expected a non-empty string, got ''"),
    ('name = "toy"', 'name = "toy"\n[eval]\nrecall_k = [1, 0]', r"\[eval\] recall_k: item 1: expected an integer >= 1, got 0"),
    ('name = "toy"', 'name = "toy"\n[eval]\ntemplates = ["a {}", "b"]', r"\[eval\] templates: 'b' has no '\{\}' for the class name"),
    ('name = "toy"', 'name = "toy"\neval = 3', r"\[eval\]: expected a table, got 3"),
    ('name = "toy"\n', "", r"recipe: missing required field 'name'"),
    ('[data]\ndataset = "toy-clusters"', "", r"recipe: missing required field 'data'"),
    ("[modalities.toy-b]", "[modalities.toy-b]\nencoder = 3", r"\[modalities.toy-b\] encoder: expected a string, got 3"),
    ('head = "mlp"', 'head = "mlp"\nloss_options = { positives = "class" }',
     r"\[modalities.toy-b\] loss_options: loss 'infonce' refused \{'positives': 'class'\}.*'pair' or 'label'"),
    ("warmup_steps = 5", "warmup_steps = 5\nloss_options = { margin = 1 }",
     r"\[bind\] loss_options: unknown option 'margin' of loss 'infonce' \(allowed: "),
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


def test_every_problem_is_reported_on_its_own_line(toy_plugin, tmp_path):
    text = recipe_text(toy_plugin, tmp_path).replace("lr = 3e-3", "lr = inf\nbach_size = 2")
    with pytest.raises(RecipeError) as error:
        parse(text)
    lines = str(error.value).splitlines()
    assert lines == ["r.toml: [bind] lr: expected a finite number, got inf",
                     "r.toml: [bind]: unknown field 'bach_size'; did you mean 'batch_size'? (allowed: epochs, "
                     "batch_size, lr, weight_decay, warmup_steps, steps_per_epoch, loss, loss_options, num_workers, "
                     "anchor_cache, anchor_cache_file, augment_anchor, precision, accumulation_steps, checkpoint_every, "
                     "shared_projection)"]


def test_head_none_is_a_valid_choice_for_a_bound_tower(toy_plugin, tmp_path):
    recipe = parse(recipe_text(toy_plugin, tmp_path).replace('head = "mlp"', 'head = "none"'))
    assert recipe.towers["toy-b"].head == "none"


def test_an_override_that_breaks_the_recipe_says_so(toy_plugin, tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(recipe_text(toy_plugin, tmp_path))
    with pytest.raises(RecipeError, match=r"r.toml: \[bind\] lr: expected a finite number, got inf \(from an override\)"):
        load_recipe(path, {"bind.lr": math.inf})
    with pytest.raises(RecipeError, match=r"override 'bind.epochs.x': bind.epochs is not a table"):
        load_recipe(path, {"bind.epochs.x": 1})
    with pytest.raises(RecipeError, match=r"r.toml: \[modalities.toy-b\] preprocess: unknown option 'nosie' .* "
                                          r"\(from an override\)$"):
        load_recipe(path, {"modalities.toy-b.preprocess.nosie": 0.2})


def test_assignments_are_validated_like_the_file(toy_plugin, tmp_path):
    recipe = parse(recipe_text(toy_plugin, tmp_path))
    for table, field, value in [(recipe.eval, "split", ""), (recipe.bind, "lr", math.inf),
                                (recipe.eval, "templates", ["no placeholder"]), (recipe.towers["toy-b"], "head", "deep"),
                                (recipe.bind, "epochs", "2")]:
        with pytest.raises(ValidationError):
            setattr(table, field, value)
    recipe.eval.extra_splits = ["real"]
    assert recipe.eval.extra_splits == ["real"]


def test_one_key_value_parser_reads_toml_values():
    assert parse_assignments(["bind.epochs=2", "lr=1e-3", "on=true", "name=digits", "xs=[1, 2]", "empty="], "--set") == {
        "bind.epochs": 2, "lr": 1e-3, "on": True, "name": "digits", "xs": [1, 2], "empty": ""}
    for bad in ("epochs", "=2"):
        with pytest.raises(RecipeError, match=rf"--option {bad!r}: expected KEY=VALUE"):
            parse_assignments([bad], "--option")


# config.json as Binder.save_pretrained wrote it before the configs became pydantic models.
SAVED_CONFIG = {
    "mmbind_version": "0.1.0", "anchor": "toy-a",
    "towers": {
        "toy-a": {"encoder": "toy-a-mlp", "options": {"output_dim": 32}, "preprocess": {}, "head": "none",
                  "temperature": 0.07, "learn_temperature": True, "freeze_encoder": False, "augment": True,
                  "loss_options": {}},
        "toy-b": {"encoder": "toy-b-mlp", "options": {}, "preprocess": {}, "head": "mlp", "temperature": 1.0,
                  "learn_temperature": True, "freeze_encoder": False, "augment": True,
                  "loss_options": {"positives": "label"}},
    },
    "dim": 32, "anchor_frozen": True,
}


def test_binder_config_reads_and_writes_the_saved_layout(toy_plugin, tmp_path):
    import torch

    from mmbind.binder import Binder

    config = BinderConfig.from_dict(SAVED_CONFIG)
    assert isinstance(config.towers["toy-b"], TowerConfig) and config.towers["toy-b"].head == "mlp"
    expected = {k: v for k, v in SAVED_CONFIG.items() if k not in ("dim", "anchor_frozen")}
    assert config.to_dict() == expected  # the same keys and values: fingerprints of stored collections hold

    torch.manual_seed(0)
    binder = Binder(config)
    saved = binder.save_pretrained(tmp_path / "model")
    (saved / "config.json").write_text(json.dumps(SAVED_CONFIG, indent=2))
    loaded = Binder.from_pretrained(saved)
    assert loaded.fingerprint() == binder.fingerprint()
    assert loaded.config == config


def test_a_damaged_binder_config_names_the_field():
    bad = json.loads(json.dumps(SAVED_CONFIG))
    bad["towers"]["toy-b"]["head"] = "deep"
    with pytest.raises(ValueError, match=r"config.json: \[towers.toy-b\] head: expected one of 'linear', 'mlp', 'none'"):
        BinderConfig.from_dict(bad)
    with pytest.raises(ValueError, match=r"config.json: config: the anchor 'toy-c' has no tower"):
        BinderConfig.from_dict({**SAVED_CONFIG, "anchor": "toy-c"})


def test_eval_config_holds_every_default():
    config = EvalConfig()
    assert (config.split, config.templates, config.recall_k, config.group_by) == (
        "test", ["{}"], [1, 5, 10], ["speaker", "language"])
    assert all(field.description for field in EvalConfig.model_fields.values())


@pytest.fixture
def cli():
    from mmbind.cli import _register_builtin_commands, cli

    _register_builtin_commands()
    return cli


def test_commands_print_one_clean_error(toy_plugin, tmp_path, cli):
    path = tmp_path / "r.toml"
    path.write_text(recipe_text(toy_plugin, tmp_path))
    result = CliRunner().invoke(cli, ["train", str(path), "--set", "bind.lr=inf"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"Error: {path}: [bind] lr: expected a finite number, got inf (from an override)" in result.output

    checkpoint = tmp_path / "model"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")  # refused before the binder is read
    for args, message in [(["--split", ""], "Invalid value for --split: expected a non-empty string, got ''"),
                          (["--template", "no class"], "Invalid value for --template: 'no class' has no '{}' for the class name"),
                          (["--option", "n_per_class"], "--option 'n_per_class': expected KEY=VALUE"),
                          (["--data", "toy-clusters", "--option", "n_per_clas=3"],
                           "--option: unknown option 'n_per_clas' of dataset 'toy-clusters'; did you mean 'n_per_class'?"),
                          (["--data", "toy-clusterz"], "--data 'toy-clusterz': unknown dataset 'toy-clusterz'")]:
        result = CliRunner().invoke(cli, ["eval", str(checkpoint), *args])
        assert result.exit_code == 2 if "Invalid" in message else result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output


def test_schema_command_prints_the_recipe_json_schema(cli, tmp_path):
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert schema["required"] == ["name", "data", "anchor", "modalities"]
    bind = schema["$defs"]["BindConfig"]["properties"]
    assert bind["batch_size"] == {"default": 128, "description": bind["batch_size"]["description"], "minimum": 1,
                                  "title": "Batch Size", "type": "integer"}
    assert schema["$defs"]["TowerTable"]["properties"]["head"]["enum"] == ["linear", "mlp", "none"]
    result = CliRunner().invoke(cli, ["schema", "--output", str(tmp_path / "recipe.schema.json")])
    assert result.exit_code == 0 and json.loads((tmp_path / "recipe.schema.json").read_text()) == schema


def test_binder_configs_are_still_built_by_position():
    config = BinderConfig("a", {"a": TowerConfig("enc-a", head="none"), "b": TowerConfig("enc-b")})
    assert (config.anchor, config.towers["b"].encoder, config.towers["a"].head) == ("a", "enc-b", "none")
    with pytest.raises(TypeError, match="'encoder' by position and by name"):
        TowerConfig("enc", encoder="other")
    with pytest.raises(ValidationError):
        TowerConfig("enc", temperature=math.nan)


def test_recipe_errors_are_user_errors():
    from mmbind.errors import UserError

    assert issubclass(RecipeError, UserError)  # the CLI prints them as one line and exits with 1


# issue 14 item 2: every option table is checked against its factory when the recipe loads.
@pytest.mark.parametrize("old,new,message", [
    ('dataset = "toy-clusters"', 'dataset = "toy-clusters"\noptions = { n_per_clas = 5 }',
     r"\[data\] options: unknown option 'n_per_clas' of dataset 'toy-clusters'; did you mean 'n_per_class'\? "
     r"\(allowed: n_per_class, seed\)"),
    ('dataset = "toy-clusters"', 'dataset = "toy-clusters"\noptions = { n_per_class = "5" }',
     r"\[data\] options: option 'n_per_class' of dataset 'toy-clusters': expected an integer, got '5'"),
    ("options = { output_dim = 32 }", "options = { output_dim = 32, hiden = 8 }",
     r"\[anchor\] options: unknown option 'hiden' of encoder 'toy-a-mlp'; did you mean 'hidden'\?"),
    ("options = { output_dim = 32 }", "options = { output_dim = 32.5 }",
     r"\[anchor\] options: option 'output_dim' of encoder 'toy-a-mlp': expected an integer, got 32.5"),
    ('head = "mlp"', 'head = "mlp"\npreprocess = { nosie = 0.2 }',
     r"\[modalities.toy-b\] preprocess: unknown option 'nosie' of the transform of 'toy-b'; did you mean 'noise'\?"),
    ('head = "mlp"', 'head = "mlp"\npreprocess = { noise = inf }',
     r"\[modalities.toy-b\] preprocess: option 'noise' of the transform of 'toy-b': expected a finite number, got inf"),
    ('head = "mlp"', 'head = "mlp"\npreprocess = { train = true }',
     r"\[modalities.toy-b\] preprocess: option 'train' of the transform of 'toy-b' is set by mmbind"),
    # the transform factory is called once: it checks its values itself
    ('head = "mlp"', 'head = "mlp"\npreprocess = { noise = -1.0 }',
     r"\[modalities.toy-b\] preprocess: the transform of 'toy-b' \(train=False\) refused \{'noise': -1.0\}: "
     r"noise must be >= 0"),
    ("options = { output_dim = 32 }", "options = { output_dim = 32 }\npreprocess = { noise = -1.0 }",
     r"\[anchor\] preprocess: the transform of 'toy-a' \(train=False\) refused"),
])
def test_options_are_checked_against_the_factories_at_load(toy_plugin, tmp_path, old, new, message):
    text = recipe_text(toy_plugin, tmp_path)
    assert old in text
    with pytest.raises(RecipeError, match=message) as error:
        parse(text.replace(old, new, 1))
    assert str(error.value).startswith("r.toml: ")


def test_every_option_problem_is_on_its_own_line(toy_plugin, tmp_path):
    text = recipe_text(toy_plugin, tmp_path).replace('head = "mlp"', 'head = "mlp"\npreprocess = { nosie = 0.2 }')
    text = text.replace('dataset = "toy-clusters"', 'dataset = "toy-clusters"\noptions = { sead = 1 }')
    with pytest.raises(RecipeError) as error:
        parse(text)
    lines = str(error.value).splitlines()
    assert len(lines) == 2 and "'sead'" in lines[0] and "'nosie'" in lines[1]


def test_option_checks_read_any_factory_signature():
    from mmbind import lazy
    from mmbind.recipe.factories import Factory, option_problems

    def factory(path: str, *, width: int = 8, scale: float = 1.0, sizes: tuple[int, ...] = (1,), **rest):
        return None

    assert option_problems(Factory(factory, "f"), {"path": "x", "sizes": [2, 3], "other": 1}) == []
    assert option_problems(Factory(factory, "f"), {"width": True, "scale": math.nan}) == [
        "option 'width' of f: expected an integer, got true", "option 'scale' of f: expected a finite number, got nan",
        "f needs option 'path'"]
    # a lazy factory is checked against its target's signature (a preset option becomes a default)
    target = lazy("mmbind.recipe.loading:parse_assignments", option="--set")
    assert option_problems(Factory(target, "g"), {"itemz": []}) == [
        "unknown option 'itemz' of g; did you mean 'items'? (allowed: items, option)", "g needs option 'items'"]


def test_a_value_the_dataset_refuses_names_the_recipe_table(tmp_path):
    from mmbind.data.compose import ComposeError  # noqa: F401  (the dataset loads through compose)

    text = DIGITS_RECIPE.replace("[data]\n", "[data]\noptions = { n_per_class = 0 }\n")
    recipe = parse(text)
    with pytest.raises(RecipeError, match=r"r.toml: \[data\] options: dataset 'digits-world' refused "
                                          r"\{'n_per_class': 0\}: .*n_per_class must be None or an int >= 1"):
        recipe.load_data()


DIGITS_RECIPE = """
name = "d"
[data]
dataset = "digits-world"
[anchor]
modality = "image"
encoder = "image-digits-cnn"
[modalities.digits]
"""


def test_recipe_to_toml_loads_back_as_the_same_recipe(toy_plugin, tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(recipe_text(toy_plugin, tmp_path))
    recipe = load_recipe(path, {"bind.epochs": 3, "modalities.toy-b.preprocess": {"noise": 0.2}})
    (tmp_path / "resolved.toml").write_text(recipe.to_toml())
    again = load_recipe(tmp_path / "resolved.toml")
    assert again.model_dump(exclude={"source", "raw"}) == recipe.model_dump(exclude={"source", "raw"})
    written = tomllib.loads((tmp_path / "resolved.toml").read_text())
    assert written["modalities"]["toy-b"]["encoder"] == "toy-b-mlp"  # the default, resolved
    assert written["eval"]["recall_k"] == [1, 5, 10]  # every default written out


# issue 16 item 14: the run folder's recipe.toml is the recipe as it ran, and `mmbind eval RUN` reads it.
def test_the_run_folder_keeps_the_recipe_with_its_overrides_and_eval_reads_it(toy_plugin, tmp_path, cli):
    path = tmp_path / "r.toml"
    path.write_text(recipe_text(toy_plugin, tmp_path))  # [bind] epochs = 1
    run = tmp_path / "run"
    overrides = ["--set", "bind.epochs=2", "--set", "anchor.pretrain.epochs=1", "--set", "eval.recall_k=[1, 3]",
                 "--set", "eval.supervised_baselines=false"]
    result = CliRunner().invoke(cli, ["train", str(path), *overrides])
    assert result.exit_code == 0, result.output
    saved = tomllib.loads((run / "recipe.toml").read_text())
    assert saved["bind"]["epochs"] == 2 and saved["anchor"]["pretrain"]["epochs"] == 1
    assert saved["eval"]["recall_k"] == [1, 3] and saved["eval"]["supervised_baselines"] is False

    result = CliRunner().invoke(cli, ["eval", str(run)])
    assert result.exit_code == 0, result.output
    results = json.loads((run / "eval.json").read_text())
    assert results["recipe_config"]["bind"]["epochs"] == 2
    assert "R@3" in json.dumps(results) and "R@5" not in json.dumps(results)


ADD = """
[[data.add]]
dataset = "toy-clusters"
options = {{ n_per_class = 20, seed = 1 }}
modalities = ["toy-b"]
"""


def added_recipe(toy_plugin, tmp_path, add=ADD.format()):
    text = recipe_text(toy_plugin, tmp_path).replace('dataset = "toy-clusters"', 'dataset = "toy-a-only"')
    return text.replace("\n[anchor]\n", add + "\n[anchor]\n")


def test_data_add_binds_another_datasets_modality_paired_by_class(toy_plugin, tmp_path):
    from mmbind.pipeline import train_recipe

    recipe = parse(added_recipe(toy_plugin, tmp_path))
    assert [a.dataset for a in recipe.added] == ["toy-clusters"] and recipe.bound == ["toy-b"]
    data = recipe.load_data()
    train = data.splits["train"]
    assert len(train["toy-a"]) == 400 and len(train["toy-b"]) == 200  # toy-b from the added dataset's options
    assert train["toy-b"].keys == [str(label) for label in train["toy-b"].labels]  # paired by class
    binder, _ = train_recipe(recipe)
    assert (tmp_path / "run" / "model" / "config.json").is_file() and binder.modalities == ["toy-a", "toy-b"]
    saved = tomllib.loads((tmp_path / "run" / "recipe.toml").read_text())
    assert saved["data"]["add"] == [{"dataset": "toy-clusters", "options": {"n_per_class": 20, "seed": 1},
                                     "modalities": ["toy-b"]}]


@pytest.mark.parametrize("add,message", [
    (ADD.replace('"toy-clusters"', '"toy-cluster"'),
     r"\[\[data.add\]\] #1 dataset: unknown dataset 'toy-cluster'; did you mean 'toy-clusters'"),
    (ADD.replace('["toy-b"]', '["toy-c"]'),
     r"\[\[data.add\]\] #1 modalities: dataset 'toy-clusters' has no modality 'toy-c'; did you mean 'toy-b'\? "
     r"\(it has: toy-a, toy-b\)"),
    (ADD.replace("seed = 1", "sed = 1"),
     r"\[\[data.add\]\] #1 options: unknown option 'sed' of dataset 'toy-clusters'; did you mean 'seed'"),
    (ADD.replace("modalities", "modality"),
     r"\[\[data.add\]\] #1: unknown field 'modality'; did you mean 'modalities'\? \(allowed: dataset, options, modalities\)"),
    (ADD.replace('["toy-b"]', "[]"), r"\[\[data.add\]\] #1 modalities: expected at least 1 item\(s\), got \[\]"),
])
def test_data_add_errors_name_the_table(toy_plugin, tmp_path, add, message):
    with pytest.raises(RecipeError, match=message):
        parse(added_recipe(toy_plugin, tmp_path, add.format()))


def test_data_add_of_a_modality_the_base_has_is_refused_when_composed(toy_plugin, tmp_path):
    recipe = parse(added_recipe(toy_plugin, tmp_path, ADD.format().replace('["toy-b"]', '["toy-a", "toy-b"]')))
    with pytest.raises(RecipeError, match=r"r.toml: \[\[data.add\]\] #1: toy-a-only already has 'toy-a'"):
        recipe.load_data()
