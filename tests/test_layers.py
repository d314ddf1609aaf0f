"""The package's import graph: no circles (type-only imports under TYPE_CHECKING aside), no module imports another
module's private names, the core layer never imports the evaluation harness or the CLI, and the benchmarks load
models through ``tl_steer.models`` (not the CLI)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "tl_steer"


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(name: str, path: Path, mods: dict[str, Path]) -> list[tuple[str, str]]:
    """``(imported module, imported name)`` for every tl_steer import of a module, lazy ones included, type-only
    ones (under ``if TYPE_CHECKING:``) left out."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skip.update(id(n) for n in ast.walk(node))
    out = []
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if not target.startswith("tl_steer"):
            continue
        for alias in node.names:
            full = f"{target}.{alias.name}"
            out.append((full if full in mods else target, alias.name))
    return out


def test_no_import_circles_and_no_private_names():
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    private = []
    for name, path in mods.items():
        for target, imported in _imports(name, path, mods):
            if target in mods and target != name:
                graph[name].add(target)
            if imported.startswith("_") and not imported.startswith("__") and target != name:
                if not target.startswith(name + "."):  # a package's own submodule
                    private.append(f"{name} imports {target}.{imported}")
    assert not private, private
    state: dict[str, int] = {}
    cycles = []

    def visit(u: str, stack: list[str]) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                cycles.append(" -> ".join(stack[stack.index(v):] + [v]))
            elif not state.get(v):
                visit(v, stack)
        stack.pop()
        state[u] = 2

    for m in sorted(mods):
        if not state.get(m):
            visit(m, [])
    assert not cycles, cycles


def test_core_layer_does_not_import_the_harness_or_the_cli():
    mods = _modules()
    core = [m for m in mods if not m.startswith(("tl_steer.eval", "tl_steer.cli")) and m != "tl_steer"]
    bad = [(m, t) for m in core for t, _ in _imports(m, mods[m], mods) if t.startswith(("tl_steer.eval", "tl_steer.cli"))]
    assert not bad, bad


def test_benchmarks_do_not_import_the_cli():
    bad = [p.name for p in (ROOT / "benchmarks").glob("*.py") if "tl_steer.cli" in p.read_text()]
    assert not bad, bad
