"""The package's layers only look down, and no import cycle exists, lazy and type-checking imports included.

Every import anywhere in a module counts (a function-level import hides a cycle, it does not break it). A unit is a
top-level module or package of harness/; LAYERS orders them, lowest first: a unit imports only units of lower
layers, and modules inside a unit never import each other in a circle. harness/ARCHITECTURE.md draws the same picture.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# lowest first; units on one line are peers and do not import each other
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("base",),  # the JSON file helper, the registry, writable folders
    ("data", "machine"),  # tasks and their data; environment, machine speed and FLOPs
    ("core",),  # building and running the Trainer, and what a run records
    ("contracts", "store", "judging", "finetune"),
    ("invariants", "reporting", "overhead"),
    ("history",),  # nightly series, their change points, the dashboard
    ("suite",),  # matrix, sharding, session, tier tests, plugin, options
    ("upgrade",),
    ("commands",),
    ("cli",),
)


def modules(root: Path = ROOT / "harness") -> dict[str, Path]:
    found = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: Mapping[str, Path]) -> Iterator[str]:
    """The harness modules `name` imports, wherever the import statement sits. `from a import b` names module a.b
    when b is a module, else a."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                if target in known and target != name:
                    yield target


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imports(name, path, known)) for name, path in known.items()}


def unit(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_every_unit_has_a_layer() -> None:
    placed = [u for layer in LAYERS for u in layer]
    assert len(placed) == len(set(placed))
    assert {unit(m) for m in modules()} - {""} == set(placed)


def test_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_layers_only_look_down() -> None:
    level = {u: i for i, layer in enumerate(LAYERS) for u in layer}
    upward = sorted(f"{a} imports {b}" for a, targets in graph().items() for b in targets
                    if unit(a) and unit(b) and unit(a) != unit(b) and level[unit(b)] >= level[unit(a)])
    assert upward == []


def test_the_checks_can_fail() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    known = {"harness.x": Path("x.py"), "harness.x.y": Path("y.py"), "harness.z": Path("z.py")}
    source = "def f():\n    from harness.x import y, CONSTANT\n    import harness.z\n"
    path = Path(__file__).with_name("_layers_probe.py")
    path.write_text(source, encoding="utf-8")
    try:
        assert sorted(imports("harness.w", path, known)) == ["harness.x", "harness.x.y", "harness.z"]
    finally:
        path.unlink()
