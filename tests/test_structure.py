"""The shape of ``edge`` stays small and one-way: checked by parsing the source, not importing it.

No class over 250 lines, no module over 400, no import cycle between modules (imports at module
level, outside ``if TYPE_CHECKING``), and no output module imports the daemon: outputs receive,
and commands come back through the receiver they were given.
"""

from __future__ import annotations

import ast
from pathlib import Path

EDGE = Path(__file__).resolve().parent.parent / "edge"
OUTPUT_MODULES = ("edge.outputs", "edge.mqtt", "edge.console")
MAX_CLASS_LINES = 250
MAX_MODULE_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(EDGE.rglob("*.py")):
        parts = path.relative_to(EDGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imported(name: str, path: Path, *, top_level_only: bool) -> set[str]:
    """Modules of ``edge`` that ``path`` imports (resolved to modules that exist)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    known = modules()
    return {n for n in names if n in known and n != name}


def test_no_module_over_400_lines_and_no_class_over_250():
    too_long = []
    for name, path in modules().items():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_CLASS_LINES:
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert too_long == []


def test_no_import_cycle_between_edge_modules():
    graph = {name: imported(name, path, top_level_only=True) for name, path in modules().items()}
    # A package's __init__ importing its own submodules is how a package is assembled, not a
    # cycle; a submodule importing the package it sits in would be one.
    for name in graph:
        graph[name] = {d for d in graph[name] if not d.startswith(name + ".")}
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*path[path.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_no_output_module_imports_the_daemon():
    offenders = [
        name
        for name, path in modules().items()
        if name.startswith(OUTPUT_MODULES)
        and any(
            m == "edge.daemon" or m.startswith("edge.daemon.")
            for m in imported(name, path, top_level_only=False)
        )
    ]
    assert offenders == []


def test_the_checks_see_what_they_check():
    """The parser finds real imports (so an empty result above means something)."""
    found = modules()
    assert imported("edge.daemon.app", found["edge.daemon.app"], top_level_only=True) >= {
        "edge.daemon.loop",
        "edge.config",
    }
    assert "edge.outputs" in imported(
        "edge.mqtt.output", found["edge.mqtt.output"], top_level_only=False
    )
