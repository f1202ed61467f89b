"""The shape of the project stays small and one-way: checked by parsing the source, not importing it.

No class over 250 lines, no module over 400; no import cycle anywhere in ``pi_inspect``, counting
imports inside functions too (a lazy import is still a dependency); no module of the edge core
importing a feature package (the console, MQTT, or any output plugin: the core finds them
through entry points); and no output imports the daemon: outputs receive, and commands come
back through the receiver they were given.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("edge", "train", "convert")  # repository folders, installed as pi_inspect.<part>
OUTPUT_GROUP = "pi_inspect.outputs"
MAX_CLASS_LINES = 250
MAX_MODULE_LINES = 400


def modules() -> dict[str, Path]:
    """Every module of the distribution, by its installed name."""
    found = {"pi_inspect": ROOT / "namespace" / "__init__.py"}
    for part in PARTS:
        for path in sorted((ROOT / part).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(("pi_inspect", *(parts[:-1] if parts[-1] == "__init__" else parts)))
            found[name] = path
    return found


KNOWN = modules()


def imported(name: str, path: Path, *, top_level_only: bool) -> set[str]:
    """Modules of the project that ``path`` imports (resolved to modules that exist)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    skipped: set[int] = set()
    for node in ast.walk(tree):  # what only a type checker sees is no dependency
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for inner in ast.walk(node))
    names: set[str] = set()
    for node in nodes:
        if id(node) in skipped:
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
    return {n for n in names if n in KNOWN and n != name}


def cycles(graph: dict[str, set[str]]) -> list[str]:
    # A package's __init__ importing its own submodules is how a package is assembled, not a
    # cycle; a submodule importing the package it sits in would be one.
    graph = {n: {d for d in deps if not d.startswith(n + ".")} for n, deps in graph.items()}
    found = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                found.append(" -> ".join([*path[path.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return found


def output_plugin_modules() -> list[str]:
    """The modules the distribution registers as output plugins (its entry points)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    group = pyproject["project"]["entry-points"][OUTPUT_GROUP]
    return sorted(target.partition(":")[0] for target in group.values())


def feature_packages() -> list[str]:
    """The console, MQTT and every output plugin: a plugin's own package, or its module where it
    sits in a package of the core (``pi_inspect.edge.outputs.jsonlines``)."""
    shared = {"pi_inspect.edge", "pi_inspect.edge.outputs"}
    features = {"pi_inspect.edge.console", "pi_inspect.edge.mqtt"}
    for module in output_plugin_modules():
        parent = module.rpartition(".")[0]
        features.add(module if parent in shared or parent not in KNOWN else parent)
    return sorted(features)


def in_package(module: str, packages: list[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_no_module_over_400_lines_and_no_class_over_250():
    too_long = []
    for name, path in KNOWN.items():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_CLASS_LINES:
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert too_long == []


def test_no_import_cycle_counting_imports_inside_functions():
    graph = {name: imported(name, path, top_level_only=False) for name, path in KNOWN.items()}
    assert cycles(graph) == []


def test_the_edge_core_imports_no_feature_package():
    """The core finds outputs through entry points; the CLI's commands wire what they run."""
    features = feature_packages()
    core = [
        name
        for name in KNOWN
        if name.startswith("pi_inspect.edge")
        and not in_package(name, features)
        and not in_package(name, ["pi_inspect.edge.commands"])
    ]
    offenders = {
        name: sorted(
            m for m in imported(name, KNOWN[name], top_level_only=False) if in_package(m, features)
        )
        for name in core
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_edge_imports_neither_train_nor_convert():
    offenders = {
        name: found
        for name, path in KNOWN.items()
        if name.startswith("pi_inspect.edge")
        and (
            found := sorted(
                m
                for m in imported(name, path, top_level_only=False)
                if in_package(m, ["pi_inspect.train", "pi_inspect.convert"])
            )
        )
    }
    assert offenders == {}


def test_no_output_module_imports_the_daemon():
    outputs = [*feature_packages(), "pi_inspect.edge.outputs"]
    offenders = [
        name
        for name, path in KNOWN.items()
        if in_package(name, outputs)
        and any(
            in_package(m, ["pi_inspect.edge.daemon"])
            for m in imported(name, path, top_level_only=False)
        )
    ]
    assert offenders == []


def test_the_checks_see_what_they_check():
    """The parser finds real imports and real cycles (so an empty result above means something)."""
    assert imported(
        "pi_inspect.edge.daemon.app", KNOWN["pi_inspect.edge.daemon.app"], top_level_only=True
    ) >= {"pi_inspect.edge.daemon.loop", "pi_inspect.edge.config"}
    assert "pi_inspect.edge.outputs" in imported(
        "pi_inspect.edge.mqtt.output", KNOWN["pi_inspect.edge.mqtt.output"], top_level_only=False
    )
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "p": {"p.x"}, "p.x": set()}) == [
        "a -> b -> c -> a"
    ]
    features = feature_packages()
    assert "pi_inspect.edge.mqtt" in features and "pi_inspect.edge.console" in features
    assert any(m.startswith("pi_inspect.edge.outputs.") for m in output_plugin_modules())
