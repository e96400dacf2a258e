"""The core's shape: no import cycles, no modality known by name, no repeated blocks."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

CORE = Path(__file__).parent.parent / "mmbind"
FIRST_PARTY_MODALITIES = {"image", "text", "audio", "depth", "thermal", "imu", "digits", "video"}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in CORE.rglob("*.py"):
        parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in modules else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m not in (name, "mmbind")}


def test_no_import_cycle_in_the_core():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            assert state.get(target) != 1, "import cycle: " + " -> ".join(trail[trail.index(target):] + [target])
            if target not in state:
                visit(target, trail + [target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_core_names_no_modality():
    # Plugins describe their inputs through Modality fields (input_file, language, extensions);
    # a string constant naming a first-party modality in the core means it special-cases one.
    offenders = []
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                    and node.value in FIRST_PARTY_MODALITIES):
                offenders.append(f"{path.relative_to(CORE.parent)}:{node.lineno}: {node.value!r}")
    assert not offenders, "the core names a modality:\n" + "\n".join(offenders)


def test_no_block_of_six_lines_is_repeated_in_the_core():
    windows: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for path in sorted(CORE.rglob("*.py")):
        lines = [(n, line.strip()) for n, line in enumerate(path.read_text().splitlines(), 1)]
        code = [(n, text) for n, text in lines if text and not text.startswith(("#", '"""', "from ", "import "))]
        for i in range(len(code) - 5):
            block = tuple(text for _, text in code[i:i + 6])
            if sum(len(text) for text in block) > 120:  # short lines (")", "return x") repeat by nature
                windows[block].append(f"{path.relative_to(CORE.parent)}:{code[i][0]}")
    repeated = {block: places for block, places in windows.items() if len(places) > 1}
    assert not repeated, "repeated blocks:\n" + "\n".join(
        ", ".join(places) + "\n    " + "\n    ".join(block) for block, places in repeated.items())
