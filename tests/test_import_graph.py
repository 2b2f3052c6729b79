"""The package's import graph has no circle, and every module builds only on modules of its own layer or below.

:data:`LAYERS` is the map of the house that ``docs/architecture.md`` draws: a new module gets a layer here, and an
import that points upwards (a block importing the model builder, a reader importing the search driver) fails.

The one allowed circle is registration: :mod:`mixnas.registry` imports the mixer and zoo packages by name
(``importlib``) so that their decorators run, and they import the registry to register. That import is by
name, so it is not an edge here. Imports inside functions count as much as those at the top: a lazy import
hides a circle from Python, not from a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mixnas"


LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundations", ("mixnas.util", "mixnas.errors", "mixnas.vocab", "mixnas.yamlio", "mixnas.plugins",
                     "mixnas.provenance")),
    ("configuration", ("mixnas.config", "mixnas.registry")),
    ("building blocks", ("mixnas.layers",)),
    ("token and channel mixers", ("mixnas.mixers",)),
    ("models", ("mixnas.network", "mixnas.zoo", "mixnas.models")),
    ("measuring and training", ("mixnas.complexity", "mixnas.latency", "mixnas.data", "mixnas.train",
                                "mixnas.proxies", "mixnas.onnx_io", "mixnas.contract")),
    ("spaces and the trial", ("mixnas.space", "mixnas.mixer_space", "mixnas.checks", "mixnas.pareto", "mixnas.moasha",
                              "mixnas.optuna_io", "mixnas.trial", "mixnas.runs")),
    ("drivers", ("mixnas.search_driver", "mixnas.ray_io", "mixnas.tabular_stats", "mixnas.tabular", "mixnas.simulate",
                 "mixnas.efficiency", "mixnas.study", "mixnas.study_match", "mixnas.study_stats", "mixnas.vs_zoo")),
    ("readers and reports", ("mixnas.analysis", "mixnas.browser", "mixnas.dashboard")),
    ("study runs", ("mixnas.study_run",)),  # runs a study's trials, then reports them through the dashboard
    ("interfaces", ("mixnas.cli", "mixnas.api", "mixnas")),
]


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of the longest prefix naming ``module`` (``mixnas.mixers.strip`` is a mixer)."""
    best, found = -1, None
    for i, (_, names) in enumerate(LAYERS):
        for n in names:
            inside = module == n or (n != "mixnas" and module.startswith(n + "."))  # the package root: itself only
            if inside and len(n) > best:
                best, found = len(n), i
    if found is None:
        raise AssertionError(f"{module} has no layer in tests/test_import_graph.py's LAYERS (and docs/architecture.md)")
    return found


def module_names() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the mixnas modules it imports anywhere in its text (``from mixnas import X`` of a name that
    is not a submodule is an import of the package's ``__init__``)."""
    mods = module_names()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.module == "mixnas" and not node.level and {a.name for a in node.names} == {"__version__"}:
                    continue  # the version string set before the package's own imports, not its API
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                while t and t not in mods:  # ``import mixnas.data.idx`` without the module: its package
                    t = t.rpartition(".")[0]
                if t and t != name:
                    graph[name].add(t)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_reader_sees_lazy_and_relative_imports() -> None:
    g = import_graph()
    assert "mixnas.config" in g["mixnas"]  # the package's public API builds on the config
    assert any(m.startswith("mixnas.mixers.") for m in g["mixnas.mixers"])  # relative/package imports
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle() -> None:
    found = circles(import_graph())
    assert not found, "import circles (a module that imports a module building on it): " + "; ".join(
        " <-> ".join(c) for c in found)


def test_every_import_points_to_the_same_layer_or_below() -> None:
    graph = import_graph()
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
              for m, targets in sorted(graph.items()) for t in sorted(targets) if layer_of(t) > layer_of(m)]
    assert not upward, "imports that point to a higher layer:\n" + "\n".join(upward)


def test_the_layer_check_catches_an_upward_import() -> None:
    assert layer_of("mixnas.mixers.strip") < layer_of("mixnas.network") < layer_of("mixnas.search_driver")
    assert layer_of("mixnas.cli.search") == layer_of("mixnas") == len(LAYERS) - 1
    with pytest.raises(AssertionError, match="has no layer"):
        layer_of("mixnas.nowhere")
