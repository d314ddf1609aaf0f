"""The package's import graph (read by ``scripts/house.py``, which docs/design.md runs on main before and after the
redesign): no circles (type-only imports under TYPE_CHECKING aside, lazy ones included), no module imports another
module's private names, the core layer never imports the evaluation harness or the CLI, and the benchmarks load
models through ``tl_steer.models`` (not the CLI)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _house():
    spec = importlib.util.spec_from_file_location("house", ROOT / "scripts" / "house.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_no_import_circles_and_no_private_names():
    house = _house()
    files = house.sources(None)
    assert len(files) > 30
    g = house.graph(files)
    assert sum(map(len, g.values())) > 100  # the graph is read (a parser that found nothing would pass the rest)
    assert not house.private_imports(files), house.private_imports(files)
    assert not house.circles(g), house.circles(g)


def test_the_checks_can_fail():
    """The circle and private-name finders on a made-up package with one of each."""
    house = _house()
    files = {"tl_steer/a.py": "from .b import x\n", "tl_steer/b.py": "def f():\n    from .a import _hidden\n"}
    assert house.circles(house.graph(files)) == [["tl_steer.a", "tl_steer.b"]]
    assert house.circles(house.graph(files, top_level_only=True)) == []
    assert house.private_imports(files) == ["tl_steer.b imports tl_steer.a._hidden"]


def test_core_layer_does_not_import_the_harness_or_the_cli():
    r = _house().report(None)
    assert r["core modules importing eval / cli"] == 0


def test_benchmarks_do_not_import_the_cli():
    assert _house().report(None)["benchmarks importing the CLI"] == 0
