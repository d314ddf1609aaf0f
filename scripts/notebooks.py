#!/usr/bin/env python
"""The tutorials as Jupyter notebooks: build them from the percent scripts, check they are in sync, execute them.

``tutorials/NN_name.py`` (a jupytext percent script, easy to review and diff) is the source; ``tutorials/NN_name.ipynb``
is what users open in Jupyter, written from it by jupytext without outputs.

    python scripts/notebooks.py sync        # rewrite every .ipynb from its .py
    python scripts/notebooks.py check       # fail unless every .ipynb has the cells of its .py (run by the tests)
    python scripts/notebooks.py execute     # run every notebook on a real kernel (nbclient + ipykernel) into
                                            # docs/tutorials/ with outputs and inline figures (the docs build)

``execute`` runs each notebook in ``tutorials/`` as its working directory, as Jupyter would, and fails on the
first cell that raises (the notebook, the cell and the error are printed). The published copies show what a reader
needs (code, printed results, figures), not the build machine: progress bars are switched off for the docs build's
kernel only (``TQDM_DISABLE``, ``HF_HUB_DISABLE_PROGRESS_BARS``; a user's own Jupyter keeps its bars), warnings and
progress residue on stderr are dropped from the outputs, and the build fails if an output still holds a warning, a
stderr block or a filesystem path of the building machine (``clean_outputs``).
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


#: stderr lines that are the build machine's noise, not the tutorial's results
_NOISE = re.compile(r"(Warning\b|warnings\.warn|\d+%\||it/s\]|s/it\]|^\s*$)")
#: absolute paths of this machine (checkout, interpreter, home, temp) that must not reach the site
_ABS_PATH = re.compile(r"(?<![\w.])/(?:root|home|tmp|usr|opt|work|var|srv|mnt)/[^\s'\")]*")


def _machine_paths() -> list[str]:
    paths = {str(ROOT), sys.prefix, sys.base_prefix, os.path.expanduser("~"), os.path.realpath(sys.prefix)}
    return sorted((p for p in paths if p and p != "/"), key=len, reverse=True)


def _scrub(text: str) -> str:
    for p in _machine_paths():
        text = text.replace(p + "/", "").replace(p, ".")
    return text


def clean_outputs(nb: nbformat.NotebookNode, name: str) -> list[str]:
    """Drop stderr warnings and progress-bar residue, strip the machine's paths; return what still does not belong
    on the site (the build fails on any)."""
    problems: list[str] = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                lines, skip_source = [], False
                for ln in out["text"].replace("\r", "\n").split("\n"):
                    if skip_source and ln.startswith("  "):  # the source line the warnings module echoes
                        skip_source = False
                        continue
                    skip_source = bool(re.search(r"Warning\b", ln))
                    if not _NOISE.search(ln):
                        lines.append(ln)
                if not lines:
                    continue
                out["text"] = "\n".join(lines) + "\n"
                problems.append(f"{name} cell {i}: stderr output {lines[0][:80]!r}")
            if out.get("output_type") == "stream":
                out["text"] = _scrub(out["text"])
            for mime, value in (out.get("data") or {}).items():
                if mime.startswith("text/") and isinstance(value, str):
                    out["data"][mime] = _scrub(value)
            if out.get("output_type") == "error":
                out["traceback"] = [_scrub(t) for t in out.get("traceback", [])]
            kept.append(out)
        cell["outputs"] = kept
        for out in kept:
            text = out.get("text", "") + "".join(v for k, v in (out.get("data") or {}).items()
                                                  if k.startswith("text/") and isinstance(v, str))
            if re.search(r"\bWarning\b", text):
                problems.append(f"{name} cell {i}: a warning in the output")
            hit = _ABS_PATH.search(text)
            if hit:
                problems.append(f"{name} cell {i}: the absolute path {hit.group(0)[:60]!r} in the output")
    return problems


def execute(only: list[str] | None = None, timeout: int = 900) -> int:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    OUT.mkdir(parents=True, exist_ok=True)
    figures = ROOT / "docs" / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TL_STEER_FIGURES", str(figures))  # also keep PNG copies for other pages
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # the docs build's kernel only: no progress bars (a reader's own Jupyter shows them as usual)
    os.environ.update(TQDM_DISABLE="1", HF_HUB_DISABLE_PROGRESS_BARS="1", TRANSFORMERS_VERBOSITY="error",
                      TRANSFORMERS_NO_ADVISORY_WARNINGS="1")
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
        problems = clean_outputs(nb, ipynb.name)
        if problems:
            print("FAILED: outputs that do not belong on the site:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
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
