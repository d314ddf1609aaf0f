"""The tutorials are notebooks users can open in Jupyter: in sync with their percent scripts, nothing that only works
as a script (``__file__``, a forced non-interactive backend), figures shown inline. The docs build (part of the test
command, ``scripts/test.sh``) executes them on a real kernel."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _notebooks():
    spec = importlib.util.spec_from_file_location("notebooks", ROOT / "scripts" / "notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("notebooks", mod)
    spec.loader.exec_module(mod)
    return mod


def test_every_tutorial_ships_a_notebook_in_sync_with_its_script():
    nb = _notebooks()
    scripts = nb.scripts()
    assert len(scripts) >= 5
    assert nb.check() == [], "run `python scripts/notebooks.py sync`"


def test_tutorials_are_notebook_safe():
    for script in sorted((ROOT / "tutorials").glob("[0-9]*.py")):
        text = script.read_text()
        assert "__file__" not in text, f"{script.name}: __file__ is undefined in Jupyter"
        assert "matplotlib.use(" not in text, f"{script.name}: forcing a backend hides the figures in Jupyter"
        if "savefig" in text:
            assert text.count("plt.show()") >= text.count(".savefig("), f"{script.name}: every figure is shown"


def test_site_links_point_at_the_rendered_pages():
    nb = _notebooks()
    import nbformat

    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "See [SADI](../docs/methods/sadi.md) and [the harness](../docs/evaluation.md#splits).")])
    nb.site_links(book)
    assert book.cells[0].source == "See [SADI](../../methods/sadi/) and [the harness](../../evaluation/#splits)."
