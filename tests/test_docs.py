"""The docs stay true to the code: every hook is documented, the worked plugin example is the tested one."""
import inspect
import re
from pathlib import Path

from mmbind.plugin import hookspecs

ROOT = Path(__file__).parent.parent


def test_every_hook_is_documented_with_its_signature():
    text = (ROOT / "docs" / "hooks.md").read_text()
    hooks = [name for name, fn in vars(hookspecs).items()
             if inspect.isfunction(fn) and hasattr(fn, "mmbind_spec")]
    assert len(hooks) == 9
    for name in hooks:
        assert f"## {name}" in text, f"docs/hooks.md has no section for hook {name}"
        params = list(inspect.signature(getattr(hookspecs, name)).parameters)
        assert re.search(rf"def {name}\({params[0]}:", text), f"signature of {name} is not documented"
    documented = set(re.findall(r"^## (\w+)", text, flags=re.M))
    assert documented == set(hooks), f"docs/hooks.md documents hooks that do not exist: {documented - set(hooks)}"


def test_every_hook_has_a_docstring():
    for name, fn in vars(hookspecs).items():
        if inspect.isfunction(fn) and hasattr(fn, "mmbind_spec"):
            assert fn.__doc__ and "Called" in fn.__doc__, name


def _table_ref(prop: dict) -> str | None:
    """The $defs reference of a property that is a table (a table of tables, an array of tables), else None."""
    items = prop.get("additionalProperties") or prop.get("items")
    return prop.get("$ref") or (items.get("$ref") if isinstance(items, dict) else None)


def _recipe_tables(schema: dict, node: dict, path: str = "") -> dict[str, list[dict]]:
    """Every table of the recipe JSON Schema by its TOML path ("" for the top level, "bind",
    "anchor.pretrain", "modalities.<name>", "[data.add]" for an array of tables), each with its
    properties and required fields."""
    tables = {path: [node]}
    for name, prop in node["properties"].items():
        ref = _table_ref(prop)
        if ref:
            sub = f"{path}.{name}" if path else name
            if "additionalProperties" in prop:  # a table of tables: one per modality
                sub += ".<name>"
            elif "items" in prop:  # an array of tables, [[data.add]]
                sub = f"[{sub}]"
            for key, found in _recipe_tables(schema, schema["$defs"][ref.split("/")[-1]], sub).items():
                tables.setdefault(key, []).extend(found)
    return tables


def _documented_defaults(section: str) -> dict[str, list]:
    """The fields of one docs/recipes.md section: name -> the values its default cell names
    (the whole cell, or each `quoted` part, read as TOML), or ["required"]."""
    import tomllib

    rows = {}
    for name, cell in re.findall(r"^\| `([a-z_]+)` \| ([^|]*) \|", section, flags=re.M):
        cell = cell.strip()
        values = ["required"] if cell.startswith("required") else []
        for text in [cell.replace("`", ""), *re.findall(r"`([^`]*)`", cell)]:
            try:
                values.append(tomllib.loads(f"v = {text}")["v"])
            except tomllib.TOMLDecodeError:
                pass
        rows[name] = values
    return rows


def test_docs_recipes_documents_every_field_of_the_json_schema_with_its_default():
    from mmbind.recipe import json_schema

    schema = json_schema()
    text = (ROOT / "docs" / "recipes.md").read_text()
    sections = {heading: body for heading, body in re.findall(r"^## ([^\n]*)\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)}
    documented_anywhere = set()
    for path, nodes in _recipe_tables(schema, schema).items():
        marker = f"`[{path}]`" if path else "Top level"
        heading = next((h for h in sections if marker in h), None)
        assert heading, f"docs/recipes.md has no section for {marker}"
        rows = _documented_defaults(sections[heading])
        documented_anywhere |= set(rows)
        for node in nodes:
            for name, prop in node["properties"].items():
                if _table_ref(prop):
                    continue  # a table: it has its own section
                where = f"{marker} {name}"
                assert name in rows, f"docs/recipes.md does not document {where}"
                if name in node.get("required", []):
                    assert "required" in rows[name], f"{where} is required, docs/recipes.md gives a default"
                elif "default" in prop:
                    assert prop["default"] in rows[name], f"{where}: the default is {prop['default']!r}, " \
                                                          f"docs/recipes.md says {rows[name]}"
    fields = {name for nodes in _recipe_tables(schema, schema).values() for node in nodes for name in node["properties"]}
    assert documented_anywhere <= fields, f"docs/recipes.md documents fields that do not exist: " \
                                          f"{sorted(documented_anywhere - fields)}"


def test_docs_recipes_shows_mmbind_schema():
    text = (ROOT / "docs" / "recipes.md").read_text()
    assert "mmbind schema" in text and "--output" in text


def test_documented_binder_folders_are_the_runs_model_folder():
    """A run folder keeps its final binder in model/ (docs/training.md); docs must not send users elsewhere."""
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for folder in re.findall(r"--binder (runs/[\w.-]+/[\w.-]+)", doc.read_text()):
            assert folder.endswith("/model"), f"{doc.name}: --binder {folder} (a run's binder is in model/)"
