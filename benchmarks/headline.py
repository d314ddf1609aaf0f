"""Headline numbers: each method on a task where the base model is competent, with equal search budgets chosen on
val and one run on the sealed split (issue 22, items 3, 5 and 6).

Per (model, task):

* **Fit** every registered method on the same contrast set: the task's own prompt with its correct vs a wrong ending,
  from the *train* split (``build_contrast``, ``--pairs`` pairs), at the middle layer (the methods' own defaults for
  site and k; MAT-Steer with its registered training defaults).
* **Equal search**: every method gets the first ``GRID_POINTS`` strengths of its registered grid, then its top
  strength doubled while the val score still rises, at most ``MAX_DOUBLINGS`` times: the same number of grid points
  for every method (4, up to 6). Each is applied at its registered position scope. The choice is the best val score
  (ties: the smaller strength); a choice at the top of the extended grid is flagged ``edge``.
* **Sealed**: base and each method's chosen strength are scored once on the first ``--n-sealed`` items of the
  task's sealed split (``tl_steer/eval/splits/sealed.json``; never scored before), and reported with
  ``tl_steer.eval.report.controls_table``: majority / constant answers, the answer given most, paired Δ vs base
  with its 95% interval, McNemar's p, Holm across the table, and the minimum detectable effect at that n.

Every val cell and sealed result is written as it is made (``<out>/<model>/val_cells.jsonl``, ``<out>/<model>/sealed/``);
a rerun resumes, and the sealed results are never recomputed (delete them to rerun, and say so).

    python benchmarks/headline.py --models smollm2 --tasks storycloze
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from tl_steer import registry  # noqa: E402
from tl_steer.eval.pairs import build_contrast  # noqa: E402
from tl_steer.eval.report import controls_table, read_results, write_json  # noqa: E402
from tl_steer.eval.run import evaluate  # noqa: E402
from tl_steer.models import load_named  # noqa: E402
from tl_steer.registry import FitOptions  # noqa: E402

MODELS = {"smollm2": "smollm2-135m-instruct", "gemma3": "gemma3-270m", "tiny": "tiny-hf"}
GRID_POINTS = 4
MAX_DOUBLINGS = 2


def grid_search(score, grid: tuple[float, ...]) -> tuple[float, list[tuple[float, float]], bool]:
    """``(chosen strength, [(strength, val score)], at the edge)``: the first ``GRID_POINTS`` of ``grid``, then the
    top strength doubled while the score still rises (``MAX_DOUBLINGS`` at most). ``score(s)`` is cached by the
    caller."""
    points = [(s, score(s)) for s in grid[:GRID_POINTS]]
    for _ in range(MAX_DOUBLINGS):
        best = max(points, key=lambda p: (p[1], -p[0]))
        if best[0] != points[-1][0]:
            break
        s = points[-1][0] * 2
        points.append((s, score(s)))
    best = max(points, key=lambda p: (p[1], -p[0]))
    return best[0], points, best[0] == points[-1][0]


def run_model(name: str, tasks: list[str], args: argparse.Namespace) -> list[dict]:
    out = args.out / name
    (out / "sealed").mkdir(parents=True, exist_ok=True)
    cells_path = out / "val_cells.jsonl"
    cells = {}
    if cells_path.is_file():
        for line in cells_path.read_text().splitlines():
            c = json.loads(line)
            cells[(c["task"], c["method"], c["strength"])] = c["value"]
    model = load_named(MODELS[name], device="cpu")
    methods = list(args.methods or registry.names())
    chosen = []
    for task in tasks:
        t0 = time.perf_counter()
        contrast = build_contrast(task, args.data_dir, split="train", max_pairs=args.pairs, seed=args.seed)
        fitted = registry.fit_many(methods, model, [contrast], FitOptions(progress=False, seed=args.seed))
        print(f"[headline] {name} {task}: fitted {methods} on {len(contrast.positive)} pairs in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        base_val = cells.get((task, "none", 0.0))
        if base_val is None:
            r = evaluate(model, task, [], label="none", split="val", limit=args.n_val, progress=False, model_name=name)
            base_val = r.metrics[r.headline].value
            cells[(task, "none", 0.0)] = base_val
            with cells_path.open("a") as f:
                f.write(json.dumps({"task": task, "method": "none", "strength": 0.0, "value": base_val}) + "\n")
        for m in methods:
            spec = registry.get(m)

            def score(s: float, m: str = m, spec=spec, task: str = task, fitted: dict = fitted,
                      base_val: float = base_val) -> float:
                key = (task, m, float(s))
                if key not in cells:
                    hooks = fitted[m].hooks(model, positions=spec.default_positions, strength=s)
                    r = evaluate(model, task, hooks, label=f"{m}@{s:g}", split="val", limit=args.n_val,
                                 progress=False, model_name=name)
                    cells[key] = r.metrics[r.headline].value
                    with cells_path.open("a") as f:
                        f.write(json.dumps({"task": task, "method": m, "strength": float(s), "value": cells[key]}) + "\n")
                    print(f"[headline] {name} {task} {m} s={s:g}: val {cells[key]:.3f} (base {base_val:.3f})", flush=True)
                return cells[key]

            s, points, edge = grid_search(score, spec.grid)
            chosen.append({"model": name, "task": task, "method": m, "strength": s, "edge": edge, "points": points,
                           "positions": spec.default_positions, "base_val": base_val})
        # the sealed run: once per condition
        done = {(r.task, r.method) for r in read_results(out / "sealed")}
        for c in [{"method": "none", "strength": 0.0}] + [c for c in chosen if c["task"] == task]:
            label = "none" if c["method"] == "none" else c["method"]
            if (task, label) in done:
                continue
            hooks = ([] if c["method"] == "none" else
                     fitted[c["method"]].hooks(model, positions=registry.get(c["method"]).default_positions,
                                               strength=c["strength"]))
            r = evaluate(model, task, hooks, label=label, split="sealed", limit=args.n_sealed, progress=False,
                         model_name=name, config={"strength": c["strength"]})
            write_json(r, out / "sealed")
            print(f"[headline] {name} {task} {label}: sealed {r.metrics[r.headline].value:.3f} (n={r.n})", flush=True)
    (out / "chosen.json").write_text(json.dumps(chosen, indent=1))
    return chosen


def render(name: str, out: Path, chosen: list[dict]) -> str:
    lines = [f"### {name}: selection on val (equal budgets)", "",
             "| task | method | positions | val grid (strength: score) | chosen | edge |", "|---|---|---|---|---|---|"]
    for c in chosen:
        grid = ", ".join(f"{s:g}: {100 * v:.1f}" for s, v in c["points"])
        lines.append(f"| {c['task']} | {c['method']} | {c['positions']} | {grid} (base {100 * c['base_val']:.1f}) | "
                     f"{c['strength']:g} | {'**edge**' if c['edge'] else ''} |")
    results = read_results(out / "sealed")
    lines += ["", f"### {name}: the sealed split, once", "", controls_table(results)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["smollm2"], choices=list(MODELS))
    ap.add_argument("--tasks", nargs="+", default=["storycloze"])
    ap.add_argument("--methods", nargs="*", default=None)
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--n-val", type=int, default=80)
    ap.add_argument("--n-sealed", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="results/headline", type=Path)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    for name in args.models:
        run_model(name, args.tasks, args)
    # every model run into this folder, not only this call's: a run of one model never drops another's tables
    md = [render(d.name, d, json.loads((d / "chosen.json").read_text()))
          for d in sorted(args.out.iterdir()) if (d / "chosen.json").is_file()]
    text = "\n\n".join(md) + "\n"
    (args.out / "headline.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
