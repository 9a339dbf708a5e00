"""The shape of the code: no import cycles between segbridge modules (function-level imports
count too), and format modules never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import segbridge

ROOT = Path(segbridge.__file__).parent


def import_graph() -> dict[str, set[str]]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        name = ".".join(["segbridge", *p.relative_to(ROOT).with_suffix("").parts])
        mods[name.removesuffix(".__init__")] = p
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                if not names and target in mods and target != "segbridge":
                    names = [target]
                graph[m].update(n for n in names if n != m)
            elif isinstance(node, ast.Import):
                graph[m].update(a.name for a in node.names if a.name in mods)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_checker_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_format_modules_do_not_import_each_other():
    graph = import_graph()
    formats = {m for m in graph if m.startswith("segbridge.formats.")}
    families = {"nifti": {m for m in formats if "nifti" in m},
                "nrrd": {m for m in formats if "nrrd" in m}}
    for name, members in families.items():
        others = set().union(*(v for k, v in families.items() if k != name))
        for m in members:
            assert not graph[m] & others, (m, graph[m] & others)


def test_io_knows_every_contour_fill_rule():
    """io checks --contour-fill without importing the contour engine: the lists must agree."""
    from segbridge import io
    from segbridge.rt.contours import RULES

    assert io.CONTOUR_FILLS == RULES
