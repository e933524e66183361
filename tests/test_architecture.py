"""The layout is part of the design: rooms that say what they hold, in layers, no import circle, small modules.

An import is any way a module reaches another at run time: an ``import`` statement (at any depth, under
TYPE_CHECKING too: a type is a dependency), an ``importlib.import_module`` / ``__import__`` call, and a
string that names a project module (``"udfs.clustering.model:load_clustering"``, ``"jobs.analyze"``), which
some code imports by name sooner or later.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import udfs

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "udfs"
PROJECT = ("udfs", "jobs")  # the project's import roots (tests/ and bench/ are outside the graph)
MAX_LINES = 300
# room -> layer: a module imports its own room and rooms of lower layers, never a peer room or a higher one.
# base: the modules directly in udfs/ (errors, config, platform, text, sentences, vectors); udfs.io: what the
# jobs read and write (configuration, command line, outputs, streams, tables); udfs: the public face
# (udfs/__init__.py); jobs: the entry points only.
LAYERS = {"base": 0, "udfs.models": 1, "udfs.runtime": 2, "udfs.tasks": 3, "udfs.clustering": 4,
          "udfs.training": 5, "udfs.io": 6, "udfs": 7, "jobs": 8}
_NAMED = re.compile(r"(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?::(?P<attr>[A-Za-z_][\w.]*))?")


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def named_module(text: str, known: set[str], *, call: bool = False) -> str | None:
    """The project module a string names: ``"module:attr"`` (the module), ``"package.module"`` or
    ``"package.module.attr"`` (the longest known module it starts with); ``call``: an import_module /
    __import__ argument, where a bare package name counts too. None for any other string."""
    found = _NAMED.fullmatch(text.strip())
    if not found or found["module"].split(".")[0] not in PROJECT:
        return None
    name = found["module"]
    if found["attr"] is not None:
        return name if name in known else None
    if "." not in name and not call:  # a bare "udfs" / "jobs" is a word (a resource package, a prefix)
        return None
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string statements (docstrings and bare strings): prose, not references."""
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)}


def project_imports(source: str, known: set[str]) -> set[str]:
    """Project modules that ``source`` imports: statements, importlib calls and strings naming a module."""
    tree = ast.parse(source)
    prose = _docstrings(tree)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif (isinstance(node, ast.Call) and ast.unparse(node.func) in ("importlib.import_module", "import_module",
                                                                         "__import__")
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(named_module(node.args[0].value, known, call=True))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            found.add(named_module(node.value, known))
    return {name for name in found if name in known}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the project modules it imports, for every module of udfs/ and jobs/ under ``root``."""
    files = {_module_name(p, root): p for top in PROJECT for p in (root / top).rglob("*.py")}
    return {name: project_imports(path.read_text(), set(files)) - {name} for name, path in files.items()}


def room(module: str) -> str:
    """The room a module belongs to: ``udfs.<package>``, ``base`` (a module directly in udfs/), ``udfs`` or
    ``jobs``."""
    parts = module.split(".")
    if parts[0] == "jobs" or module == "udfs":
        return parts[0]
    if f"udfs.{parts[1]}" in LAYERS or len(parts) > 2 or (PACKAGE / parts[1]).is_dir():
        return f"udfs.{parts[1]}"
    return "base"


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """One line per import that reaches up, across to a peer room, or into a room with no layer."""
    found = []
    for source, targets in sorted(graph.items()):
        for target in sorted(targets):
            if source.startswith(target + "."):  # a module's own package (imported first anyway)
                continue
            here, there = room(source), room(target)
            if here == there:
                continue
            if here not in LAYERS or there not in LAYERS:
                found.append(f"{source} -> {target}: room {here if here not in LAYERS else there} has no layer "
                             "(add it to LAYERS)")
            elif LAYERS[there] >= LAYERS[here]:
                found.append(f"{source} ({here}, layer {LAYERS[here]}) -> {target} ({there}, layer {LAYERS[there]})")
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle among the modules, or None (a package importing its own submodule is no circle)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if node.startswith(nxt + "."):  # a submodule importing its package's __init__
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def _udfs(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {name: targets for name, targets in graph.items() if name.split(".")[0] == "udfs"}


def test_no_import_circle_in_udfs():
    assert find_cycle(_udfs(import_graph())) is None


def test_no_import_circle_in_jobs():
    assert find_cycle(import_graph()) is None


def test_every_import_keeps_to_the_layers():
    assert layer_violations(import_graph()) == []


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_strings_and_importlib_calls_are_imports():
    known = {"udfs", "udfs.models", "udfs.models.kinds", "udfs.clustering", "udfs.clustering.model", "jobs",
             "jobs.cli", "jobs.analyze"}
    source = '''
"""Docstrings are prose: udfs.clustering.model and jobs.analyze are not imported here."""
import importlib
from udfs.models import kinds

BUILDER = "udfs.clustering.model:load_clustering"
COMMANDS = {"analyze": "jobs.analyze"}
TARGET = "udfs.models.kinds.register"  # a module's attribute: its module
NOT_A_MODULE = "udfs.clustering.model:"
PROSE = f"see {BUILDER}"
MESSAGE = "run python -m jobs.cli to register"


def load():
    return importlib.import_module("udfs"), __import__("jobs.cli")
'''
    assert project_imports(source, known) == {"udfs.models.kinds", "udfs.clustering.model", "jobs.analyze",
                                              "udfs", "jobs.cli"}


def test_the_layers_refuse_an_import_upwards_or_across():
    graph = {"udfs.models.kinds": {"udfs.clustering.model", "udfs.errors"},  # up
             "udfs.errors": {"udfs.platform"},                                # within base
             "udfs.clustering.model": {"udfs.training.head", "udfs.models.loading", "udfs.clustering"},  # up
             "udfs.runtime.worker": {"jobs.cli"},                             # into the entry points
             "udfs.io.output": {"jobs.cli"},                                  # into the entry points
             "udfs.misc.output": {"udfs.errors"},                             # a room with no layer
             "jobs.cli": {"udfs", "udfs.models.kinds", "udfs.io.cli"}}
    assert layer_violations(graph) == [
        "udfs.clustering.model (udfs.clustering, layer 4) -> udfs.training.head (udfs.training, layer 5)",
        "udfs.io.output (udfs.io, layer 6) -> jobs.cli (jobs, layer 8)",
        "udfs.misc.output -> udfs.errors: room udfs.misc has no layer (add it to LAYERS)",
        "udfs.models.kinds (udfs.models, layer 1) -> udfs.clustering.model (udfs.clustering, layer 4)",
        "udfs.runtime.worker (udfs.runtime, layer 2) -> jobs.cli (jobs, layer 8)",
    ]
    LAYERS["udfs.peer"] = LAYERS["udfs.clustering"]
    try:  # two rooms of one layer do not import each other
        assert layer_violations({"udfs.peer.a": {"udfs.clustering.model"}}) == [
            "udfs.peer.a (udfs.peer, layer 4) -> udfs.clustering.model (udfs.clustering, layer 4)"]
    finally:
        del LAYERS["udfs.peer"]


def test_no_module_over_the_size_limit():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}


def test_every_room_says_what_it_is_for():
    rooms = sorted(p.parent for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE)
    assert {r.name for r in rooms} >= {"tasks", "runtime", "models", "backends", "training", "clustering", "io"}
    for room_dir in rooms:
        doc = ast.get_docstring(ast.parse((room_dir / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()) <= 2, room_dir


def test_jobs_holds_entry_points_only():
    """Each module of jobs/ is a command (a ``main`` it runs as ``python -m jobs.<job>``): parse, run, print.
    What the jobs share (configuration, outputs, storage, streams, reports, the CLI plumbing) lives in udfs/io/."""
    for path in sorted((ROOT / "jobs").glob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        runs = any(isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'" for node in tree.body)
        assert "main" in functions and runs, f"jobs/{path.name} is not an entry point (move it to udfs/io/)"


def test_public_api_names_no_module():
    """``udfs.summarize`` is the function, never a module it would hide."""
    for name in udfs.__all__:
        assert not (PACKAGE / f"{name}.py").exists() and not (PACKAGE / name).is_dir(), name


def test_no_test_imports_bench():
    """bench/ measures; tests check. What both need lives in the package or in tests/helpers.py."""
    tests = Path(__file__).resolve().parent
    found = {}
    for path in sorted(tests.rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        names |= {node.args[0].value for node in ast.walk(tree) if isinstance(node, ast.Call)
                  and ast.unparse(node.func) in ("importlib.import_module", "import_module", "__import__")
                  and node.args and isinstance(node.args[0], ast.Constant)}
        if bad := sorted(n for n in names if isinstance(n, str) and n.split(".")[0] == "bench"):
            found[str(path.relative_to(ROOT))] = bad
    assert found == {}
