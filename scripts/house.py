"""The package's structure at a git revision (or the working tree): modules and sizes, the import graph, circles,
private names imported across modules, layer breaks. ``docs/design.md`` shows main before the redesign (fa6606d)
next to now:

    python scripts/house.py fa6606d HEAD          # markdown table, one column per revision
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sources(rev: str | None, folder: str = "tl_steer") -> dict[str, str]:
    """``{path: text}`` of the ``.py`` files under ``folder`` at ``rev`` (``None``: the working tree)."""
    if rev is None:
        return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in (ROOT / folder).rglob("*.py")}
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, folder], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    return {n: subprocess.run(["git", "show", f"{rev}:{n}"], cwd=ROOT, check=True, capture_output=True,
                              text=True).stdout for n in names if n.endswith(".py")}


def module_name(path: str) -> str:
    parts = Path(path).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(name: str, path: str, text: str, mods: set[str], top_level_only: bool = False) -> list[tuple[str, str]]:
    """``(imported module, imported name)`` for every tl_steer import of a module (lazy ones too, unless
    ``top_level_only``; type-only ones under ``if TYPE_CHECKING:`` left out)."""
    pkg = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    tree = ast.parse(text)
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skip.update(id(n) for n in ast.walk(node))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
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


def graph(files: dict[str, str], top_level_only: bool = False) -> dict[str, set[str]]:
    mods = {module_name(p): p for p in files}
    g: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for target, _ in imports(m, p, files[p], set(mods), top_level_only):
            if target in mods and target != m:
                g[m].add(target)
    return g


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                strong(w)
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

    sys.setrecursionlimit(10000)
    for v in sorted(g):
        if v not in index:
            strong(v)
    return out


def private_imports(files: dict[str, str]) -> list[str]:
    mods = {module_name(p): p for p in files}
    out = []
    for m, p in mods.items():
        for target, imported in imports(m, p, files[p], set(mods)):
            if imported.startswith("_") and not imported.startswith("__") and target != m \
                    and not target.startswith(m + "."):
                out.append(f"{m} imports {target}.{imported}")
    return out


def report(rev: str | None) -> dict[str, object]:
    files = sources(rev)
    bench = sources(rev, "benchmarks")
    g_all, g_top = graph(files), graph(files, top_level_only=True)
    lines = {module_name(p): len(t.splitlines()) for p, t in files.items()}
    core = [m for m in g_all if not m.startswith(("tl_steer.eval", "tl_steer.cli")) and m != "tl_steer"]
    return {
        "modules": len(files),
        "lines": sum(lines.values()),
        "largest modules (lines)": ", ".join(f"{m.removeprefix('tl_steer.')} {n}" for m, n in
                                             sorted(lines.items(), key=lambda kv: -kv[1])[:4]),
        "import edges (lazy ones too)": sum(len(v) for v in g_all.values()),
        "circles (lazy imports too)": len(circles(g_all)),
        "circles (module-level imports)": len(circles(g_top)),
        "private names imported across modules": len(private_imports(files)),
        "core modules importing eval / cli": sum(any(t.startswith(("tl_steer.eval", "tl_steer.cli")) for t in g_all[m])
                                                for m in core),
        "benchmarks importing the CLI": sum("tl_steer.cli" in t for t in bench.values()),
    }


def main(argv: list[str]) -> int:
    revs = argv or ["HEAD"]
    reports = [report(None if r == "worktree" else r) for r in revs]
    print("| | " + " | ".join(f"`{r}`" for r in revs) + " |")
    print("|---|" + "---|" * len(revs))
    for key in reports[0]:
        print(f"| {key} | " + " | ".join(str(r[key]) for r in reports) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
