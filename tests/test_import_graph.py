"""The project's modules import each other without circles.

The graph is read from the source with ``ast``, every ``import`` counted, also those
inside functions: a lazy import hides a circle from Python, not from a reader.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "data_prep", "pipeline", "lm", "scripts")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def imported_names(tree: ast.AST, importer: str, is_package: bool) -> set[str]:
    """Every dotted name an ``import`` or ``from ... import`` of ``tree`` may refer to."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against the importer's package
                package = importer.split(".") if is_package else importer.split(".")[:-1]
                package = package[:len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # "from pkg import module"
    return names


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found = imported_names(tree, name, path.name == "__init__.py")
        graph[name] = {other for other in found if other in modules and other != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for other in sorted(graph[node]):
            if state.get(other) == 1:
                return path[path.index(other):] + [other]
            if other not in state:
                cycle = visit(other)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_the_projects_imports():
    graph = import_graph()
    assert "pipeline.cli" in graph and {"data_prep.records", "common.files"} <= graph["pipeline.train"]


def test_a_circle_is_found_when_there_is_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_of_the_project_is_part_of_an_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_training_does_not_import_inference():
    """Training measures its dev CER with the greedy decoder, which lives below both."""
    graph = import_graph()
    assert not graph["pipeline.train"] & {"pipeline.recognize", "pipeline.decode", "pipeline.transcribe"}


FLOORS = ("common", "data_prep", "lm", "pipeline", "scripts")  # each may import only those before it


def test_every_import_goes_down_the_floors_common_data_prep_lm_pipeline_scripts():
    upward = sorted(f"{importer} -> {imported}" for importer, imports in import_graph().items() for imported in imports
                    if FLOORS.index(imported.split(".")[0]) > FLOORS.index(importer.split(".")[0]))
    assert not upward, "imports that run back up a floor: " + ", ".join(upward)
