#!/usr/bin/env python
"""The tutorials as Jupyter notebooks: build them from the percent scripts, check they are in sync, execute them.

``tutorials/NN_name.py`` (a jupytext percent script, easy to review and diff) is the source; ``tutorials/NN_name.ipynb``
is what users open in Jupyter, written from it by jupytext without outputs.

    python scripts/notebooks.py sync        # rewrite every .ipynb from its .py
    python scripts/notebooks.py check       # fail unless every .ipynb has the cells of its .py (run by the tests)
    python scripts/notebooks.py execute     # run every notebook on a real kernel (nbclient + ipykernel) into
                                            # docs/tutorials/ with outputs and inline figures (the docs build)

``execute`` runs each notebook in ``tutorials/`` as its working directory, as Jupyter would, and fails on the
first cell that raises (the notebook, the cell and the error are printed).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
OUT = ROOT / "docs" / "tutorials"


def scripts(only: list[str] | None = None) -> list[Path]:
    paths = sorted(TUTORIALS.glob("[0-9]*.py"))
    return [p for p in paths if not only or any(p.name.startswith(o) for o in only)]


def notebook_of(script: Path) -> nbformat.NotebookNode:
    nb = jupytext.read(script)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # stable ids: a re-sync changes nothing unless a cell changed
    return nb


_DOC_LINK = re.compile(r"\]\(\.\./docs/([^)#]+?)\.md(#[^)]*)?\)")


def site_links(nb: nbformat.NotebookNode) -> None:
    """Links to ``../docs/<page>.md`` (right in Jupyter and on GitHub) -> the page's URL on the docs site."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _DOC_LINK.sub(lambda m: f"](../../{m.group(1)}/{m.group(2) or ''})", cell.source)


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def sync(only: list[str] | None = None) -> int:
    for script in scripts(only):
        nbformat.write(notebook_of(script), script.with_suffix(".ipynb"))
        print(f"wrote {script.with_suffix('.ipynb').relative_to(ROOT)}")
    return 0


def check(only: list[str] | None = None) -> list[str]:
    """Names of notebooks missing or out of sync with their scripts (empty: all in sync)."""
    bad = []
    for script in scripts(only):
        ipynb = script.with_suffix(".ipynb")
        if not ipynb.is_file() or _cells(nbformat.read(ipynb, as_version=4)) != _cells(notebook_of(script)):
            bad.append(ipynb.name)
    return bad


def execute(only: list[str] | None = None, timeout: int = 900) -> int:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    OUT.mkdir(parents=True, exist_ok=True)
    figures = ROOT / "docs" / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TL_STEER_FIGURES", str(figures))  # also keep PNG copies for other pages
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for script in scripts(only):
        ipynb = script.with_suffix(".ipynb")
        nb = nbformat.read(ipynb, as_version=4)
        t0 = time.perf_counter()
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(TUTORIALS)}})
        try:
            client.execute()
        except CellExecutionError as e:
            print(f"FAILED {ipynb.name}:\n{e}", file=sys.stderr)
            return 1
        site_links(nb)
        nbformat.write(nb, OUT / ipynb.name)
        images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
        print(f"executed {ipynb.name} in {time.perf_counter() - t0:.1f} s ({images} inline figures)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["sync", "check", "execute"])
    ap.add_argument("only", nargs="*", help="tutorial name prefixes, e.g. 01 04")
    args = ap.parse_args(argv)
    if args.command == "sync":
        return sync(args.only)
    if args.command == "check":
        bad = check(args.only)
        if bad:
            print(f"out of sync with their .py: {bad}; run `python scripts/notebooks.py sync`", file=sys.stderr)
            return 1
        print("notebooks in sync")
        return 0
    return execute(args.only)


if __name__ == "__main__":
    sys.exit(main())
