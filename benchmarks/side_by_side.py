"""The papers' tables next to ours (issue 22, item 6): per task, the paper's row (model, size, n as the paper or its
reference loader gives them) and each of our models' sealed headline run, with every method's difference from its
own unsteered model and that difference's Holm-adjusted p across the methods of the same run.

The papers' numbers are read from ``docs/assets/paper_numbers.json`` (each block names the table or text it was
transcribed from); ours from the sealed results ``benchmarks/headline.py`` wrote (``<headline>/<model>_sealed/``).
Nothing is rerun: this only lays the numbers side by side, so a reader sees the scale and the n behind each.

    python benchmarks/side_by_side.py            # writes docs/assets/side_by_side.table and prints it
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tl_steer.eval.controls import holm  # noqa: E402
from tl_steer.eval.report import read_results  # noqa: E402

#: our registry names and the paper's column of the same method (SADI's paper has no PCA or MAT-Steer column)
COLUMNS = (("caa", "caa", "CAA"), ("pca", None, "PCA"), ("iti", "iti", "ITI"), ("sadi", "sadi_head", "SADI-HEAD"),
           ("mat-steer", None, "MAT-Steer"))
OURS = {"smollm2": ("SmolLM2-135M-Instruct", 0.135), "gemma3": ("Gemma-3-270M", 0.27)}
#: our task name -> the key of the same task in the paper's table
TASKS = {"storycloze": "storycloze"}


def paper_rows(papers: dict, task: str) -> list[str]:
    """The paper's row for ``task`` (absolute accuracies and each method's difference from the paper's baseline)."""
    t1 = papers["sadi_table1"]
    row = t1["tasks"].get(TASKS[task])
    if row is None:
        return []
    cells = []
    for _, key, _ in COLUMNS:
        cells.append("–" if key is None else f"{row[key]:.1f} ({row[key] - row['baseline']:+.1f})")
    n = t1["n"].get(task, t1["n"].get("others", "?"))
    return [f"| SADI paper, Table 1 | {t1['model']} ({t1['params_b']}B) | {t1['formulation']} | {n} | {row['baseline']:.1f} | "
            + " | ".join(cells) + " | not reported |"]


def our_rows(sealed: Path, task: str) -> list[str]:
    """One row per model: our sealed headline run, Δ vs our base with Holm across the run's methods."""
    out = []
    for model, (name, size) in OURS.items():
        folder = sealed / f"{model}_sealed"
        if not folder.is_dir():
            out.append(f"| tl_steer, sealed | {name} ({size}B) | – | – | not run | " + " | ".join("–" for _ in COLUMNS)
                       + " | – |")
            continue
        res = {r.method: r for r in read_results(folder) if r.task == task}
        base = res["none"]
        metric = base.headline
        cmps = {m: base.compare(res[m], metric) for m, _, _ in COLUMNS if m in res}
        adjusted = dict(zip(cmps, holm([c.mcnemar_p for c in cmps.values()]), strict=True))
        cells, survived = [], []
        for m, _, _ in COLUMNS:
            if m not in res:
                cells.append("–")
                continue
            c = cmps[m]
            cells.append(f"{100 * res[m].metrics[metric].value:.1f} ({100 * c.diff:+.1f}, Holm p {adjusted[m]:.2g})")
            if adjusted[m] < 0.05:
                survived.append(m)
        form = f"cloze over the options, log-likelihood ({metric})"
        out.append(f"| tl_steer, sealed | {name} ({size}B) | {form} | {base.n} | {100 * base.metrics[metric].value:.1f} | "
                   + " | ".join(cells) + f" | {', '.join(survived) or 'none'} |")
    return out


def render(papers: dict, sealed: Path) -> str:
    lines = []
    for task in TASKS:
        lines += [f"**{task}** (accuracy, %; in brackets the difference from the same row's unsteered model)", "",
                  "| source | model (size) | formulation | n | base | " + " | ".join(c[2] for c in COLUMNS)
                  + " | separated after Holm |", "|" + "---|" * (6 + len(COLUMNS))]
        lines += paper_rows(papers, task) + our_rows(sealed, task) + [""]
        lines += [f"({k}) {v}" for k, v in papers["sadi_table1"].get("n_notes", {}).items()] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--papers", type=Path, default=ROOT / "docs/assets/paper_numbers.json")
    ap.add_argument("--sealed", type=Path, default=ROOT / "docs/assets/headline",
                    help="folder holding <model>_sealed/ result folders (benchmarks/headline.py's sealed runs)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/assets/side_by_side.table")
    args = ap.parse_args(argv)
    text = render(json.loads(args.papers.read_text()), args.sealed)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
