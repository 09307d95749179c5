"""Imports go one way: no cycle among infoflow's modules (function-level imports included: checks.py
and sweep.py used to import each other that way), and infoflow never imports the callbacks."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

#: Repository folders installed under another name (pyproject's package-dir).
INSTALLED_AS = {"callbacks": "infoflow.callbacks", "conf": "infoflow.conf"}


def _module_name(path: Path) -> str:
    """The name a module is imported by once installed (callbacks/x.py: infoflow.callbacks.x)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    parts[0] = INSTALLED_AS.get(parts[0], parts[0])
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports anywhere in its body (``from m import f``: ``m``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            found |= {
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            }
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m in modules and m != name}


def _graph(*packages: str) -> dict[str, set[str]]:
    paths = [p for pkg in packages for p in (ROOT / pkg).rglob("*.py")]
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, modules) for p in paths}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, or None (depth-first search, colouring nodes)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    assert _cycle(_graph("infoflow", "callbacks")) is None


#: The architecture, bottom up: a module imports only from its own layer or below.
LAYERS = [
    # plain helpers anything may use
    ["infoflow.errors", "infoflow.io", "infoflow.specs", "infoflow.stopping", "infoflow.threads"],
    # pure estimators, and the tidy records
    ["infoflow.estimators", "infoflow.records"],
    # data and models (no estimators), analysis and summaries of records
    [
        "infoflow.data",
        "infoflow.models",
        "infoflow.analysis",
        "infoflow.summary",
        "infoflow.loggers",
    ],
    # the callbacks (the only code that knows models and estimators), figures of records
    ["infoflow.callbacks", "infoflow.plots"],
    # the app on top: everything else (__main__, cli, schema, checks, build, train, sweep, ...)
]


def _layer(module: str) -> int:
    found = [
        (i, n) for i, names in enumerate(LAYERS) for n in names
        if module == n or module.startswith(f"{n}.")
    ]  # fmt: skip
    return max(found, key=lambda f: len(f[1]))[0] if found else len(LAYERS)


def test_imports_point_down_the_layers():
    graph = _graph("infoflow", "callbacks")
    up = [
        f"{m} -> {d}" for m, deps in sorted(graph.items()) for d in sorted(deps)
        if _layer(d) > _layer(m)
    ]  # fmt: skip
    assert up == []


def test_models_and_data_know_no_estimators_and_figures_read_only_records():
    graph = _graph("infoflow", "callbacks")
    rules = {
        ("infoflow.models", "infoflow.data"): ("infoflow.estimators", "infoflow.records"),
        ("infoflow.plots", "infoflow.report", "infoflow.analysis"): (
            "infoflow.models", "infoflow.data", "infoflow.estimators", "infoflow.callbacks",
            "infoflow.train", "infoflow.build",
        ),
    }  # fmt: skip
    bad = [
        f"{m} -> {d}"
        for owners, banned in rules.items()
        for m, deps in graph.items() if m.startswith(owners)
        for d in deps if d.startswith(banned)
    ]  # fmt: skip
    assert bad == []


def test_infoflow_never_imports_the_callbacks():
    """Below the app, only the callbacks themselves know the callbacks."""
    graph = _graph("infoflow", "callbacks")
    bad = {
        m: sorted(d for d in deps if d.startswith("infoflow.callbacks"))
        for m, deps in graph.items()
        if not m.startswith("infoflow.callbacks") and _layer(m) < len(LAYERS)
    }
    assert {m: d for m, d in bad.items() if d} == {}


def test_estimators_are_pure():
    """Estimators take arrays and return numbers: no data sets, records or file writing (the IB
    curve takes p(x, y); caching belongs to the data or records side)."""
    banned = (
        "infoflow.data",
        "infoflow.records",
        "infoflow.io",
        "infoflow.plots",
        "infoflow.callbacks",
    )
    graph = _graph("infoflow", "callbacks")
    found = {m: sorted(d for d in deps if d.startswith(banned)) for m, deps in graph.items()}
    for path in (ROOT / "infoflow" / "estimators").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found[_module_name(path)] += [n for n in names if n in ("tempfile", "shutil")]
    assert {m: d for m, d in found.items() if d and m.startswith("infoflow.estimators")} == {}
