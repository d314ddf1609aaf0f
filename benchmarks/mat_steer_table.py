"""MAT-Steer's Table 1 as its reference ran it, with every choice made on val and paired comparisons on test.

Protocol (docs/results_earlier.md, "MAT-Steer as the reference ran it"):

1. Contrast sets from each task's *train* split: answer-balanced pairs (default) and the reference's own texts
   (``style="reference"``).
2. MAT-Steer choices on the *val* split, by the mean headline score over TruthfulQA MC2, ToxiGen and BBQ, one stage
   at a time: (a) layer and site (``resid_pre``, or the reference's design: fit on ``resid_pre``, edit ``hook_z``),
   (b) edit positions (``all``, ``generated``, ``last_prompt+generated``, and the reference's ``last``),
   (c) strength over the registered grid. The reference preset and the reference data are then fitted at the same
   placement and get their own strength on val. Baselines (CAA, PCA, ITI, SADI) get their strength on val.
3. Test: every condition on the same items; each method against base and MAT-Steer against the best baseline
   (chosen on val), with paired bootstrap intervals and McNemar's exact test for accuracies; MMLU (cloze) for
   capability retention.
4. Gate selectivity of the selected MAT-Steer on held-out texts of each task and on ParaDetox.

    python benchmarks/mat_steer_table.py                      # CPU sizes (about an hour on 2 cores)
    python benchmarks/mat_steer_table.py --quick              # the tiny random model, seconds (what the test runs)
    python benchmarks/mat_steer_table.py --device cuda --limit 400 --tqa-limit 400 --val-limit 80 --tqa-val-limit 80

Writes ``summary.json``, ``results.md``, one JSON per test cell and ``gates.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from tl_steer import FitOptions, registry  # noqa: E402
from tl_steer.eval import steering  # noqa: E402
from tl_steer.eval.gates import gate_selectivity, load_paradetox, plot_gates  # noqa: E402
from tl_steer.eval.pairs import build_contrast  # noqa: E402
from tl_steer.eval.report import write_json  # noqa: E402
from tl_steer.eval.run import EvalResult, evaluate  # noqa: E402
from tl_steer.io import atomic_write_text  # noqa: E402
from tl_steer.models import load_named as load_model  # noqa: E402

TASKS = ("truthfulqa_mc2", "toxigen", "bbq")
TARGET = "mat-steer"
BASELINES = ("caa", "pca", "iti", "sadi")
POSITIONS = ("all", "generated", "last_prompt+generated", "last")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--device", default=None)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--quick", action="store_true", help="tiny random model and tiny sizes: a smoke test")
    ap.add_argument("--fit-limit", type=int, default=80, help="train items per task for the contrast sets")
    ap.add_argument("--max-pairs", type=int, default=120, help="pairs per task (reference style: texts per side)")
    ap.add_argument("--val-limit", type=int, default=40, help="val items per task (ToxiGen, BBQ)")
    ap.add_argument("--tqa-val-limit", type=int, default=12, help="val items of TruthfulQA (its primer is long)")
    ap.add_argument("--limit", type=int, default=120, help="test items per task (ToxiGen, BBQ)")
    ap.add_argument("--tqa-limit", type=int, default=50, help="test items of TruthfulQA")
    ap.add_argument("--mmlu-limit", type=int, default=60, help="MMLU (cloze) test items; 0 skips it")
    ap.add_argument("--gate-limit", type=int, default=60, help="held-out texts per side for gate selectivity")
    ap.add_argument("--layers", type=int, nargs="*", default=None,
                    help="candidate layers (default: round(0.45 * n_layers), as the reference's 14 of 32, and n_layers // 2)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/mat_steer_table")
    ap.add_argument("--from-cells", action="store_true", help="recompute comparisons and tables of a finished --out")
    args = ap.parse_args(argv)
    if args.from_cells:
        return resummarise(Path(args.out))
    if args.quick:
        args.model = "tiny"
        args.fit_limit, args.max_pairs, args.val_limit, args.tqa_val_limit = 6, 6, 3, 2
        args.limit, args.tqa_limit, args.mmlu_limit, args.gate_limit = 3, 2, 2, 4
    torch.manual_seed(args.seed)
    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, args.device)
    n_layers = model.cfg.n_layers
    layers = args.layers or sorted({round(0.45 * n_layers), n_layers // 2})
    epochs = {"epochs": 2} if args.quick else {}
    log: dict[str, Any] = {"args": vars(args), "layers": layers, "val": {}, "selected": {}}
    print(f"model {args.model}: {n_layers} layers; candidate layers {layers}")

    def sets(style: str) -> list:
        return [build_contrast(t, args.data_dir, "train", limit=args.fit_limit, max_pairs=args.max_pairs,
                               seed=args.seed, style=style) for t in TASKS]

    balanced, reference = sets("balanced"), sets("reference")
    log["contrast"] = {s: {c.attribute: [len(c.positive), len(c.negative)] for c in v}
                       for s, v in (("balanced", balanced), ("reference", reference))}

    def limit(task: str, split: str) -> int:
        if split == "val":
            return args.tqa_val_limit if task.startswith("truthfulqa") else args.val_limit
        return args.tqa_limit if task.startswith("truthfulqa") else args.limit

    def run(label: str, hooks: list, task: str, split: str, cfg: dict | None = None) -> EvalResult:
        return evaluate(model, task, hooks, label=label, split=split, limit=limit(task, split), data_dir=args.data_dir,
                        batch_size=args.batch_size, progress=False, model_name=args.model, config=cfg or {})

    def val_score(hooks: list) -> float:
        return sum(run("val", hooks, t, "val").value for t in TASKS) / len(TASKS)

    def fit(method: str, sets_: list, layer: int, **extra: Any) -> Any:
        opts = FitOptions(layer=layer, k=None, seed=args.seed, read_batch_size=args.batch_size, progress=False,
                          extra={**(epochs if method == TARGET else {}), **extra})
        return steering.fit(method, model, sets_, opts)

    base_val = val_score([])
    log["val"]["base"] = base_val
    print(f"val base: {base_val:.4f}")

    # -- MAT-Steer: (a) layer x site, (b) positions, (c) strength -------------------------------------------
    stage_a = {}
    for layer in layers:
        for site in ("resid_pre", "z"):
            m = fit(TARGET, balanced, layer, **({"edit_site": "z"} if site == "z" else {}))
            stage_a[(layer, site)] = (val_score(m.hooks(model, positions="all")), m)
            print(f"  val mat-steer layer {layer} site {site}: {stage_a[(layer, site)][0]:.4f}")
    (layer, site), (_, mat) = max(stage_a.items(), key=lambda kv: kv[1][0])
    log["val"]["layer_site"] = {f"{k[0]}/{k[1]}": v[0] for k, v in stage_a.items()}
    stage_b = {p: val_score(mat.hooks(model, positions=p)) for p in POSITIONS}
    positions = max(stage_b, key=stage_b.get)
    log["val"]["positions"] = stage_b
    print(f"  val positions: {stage_b} -> {positions}")
    edit = {"edit_site": "z"} if site == "z" else {}
    variants = {TARGET: mat,
                f"{TARGET}:reference-preset": fit(TARGET, balanced, layer, preset="reference", **edit),
                f"{TARGET}:reference-data": fit(TARGET, reference, layer, **edit)}
    chosen: dict[str, tuple[Any, str, float]] = {}
    for label, m in variants.items():
        grid = {s: val_score(m.hooks(model, positions=positions, strength=s)) for s in registry.get(TARGET).grid}
        best = max(grid, key=grid.get)
        chosen[label] = (m, positions, best)
        log["val"][f"strength:{label}"] = grid
        print(f"  val {label} strengths {grid} -> {best}")
    log["selected"][TARGET] = {"layer": layer, "site": site, "positions": positions}

    # -- baselines: strength on val at their registered placement ------------------------------------------
    fitted = steering.fit_many(list(BASELINES), model, balanced,
                               FitOptions(layer=n_layers // 2, seed=args.seed, read_batch_size=args.batch_size, progress=False))
    baseline_val = {}
    for name, m in fitted.items():
        pos = registry.get(name).default_positions
        grid = {s: val_score(m.hooks(model, positions=pos, strength=s)) for s in registry.get(name).grid}
        best = max(grid, key=grid.get)
        chosen[name] = (m, pos, best)
        baseline_val[name] = grid[best]
        log["val"][f"strength:{name}"] = grid
        print(f"  val {name} strengths {grid} -> {best}")
    best_baseline = max(baseline_val, key=baseline_val.get)
    log["selected"]["best_baseline_on_val"] = best_baseline
    log["selected"]["strengths"] = {k: v[2] for k, v in chosen.items()}

    # -- test ---------------------------------------------------------------------------------------------------
    tasks = list(TASKS) + (["mmlu"] if args.mmlu_limit else [])
    results: dict[str, dict[str, EvalResult]] = {}
    conditions = {"none": ([], {}), "prompting": ([], {})}
    for label, (m, pos, s) in chosen.items():
        conditions[label] = (m.hooks(model, positions=pos, strength=s),
                             {"strength": s, "positions": pos, "layer": layer if label.startswith(TARGET) else n_layers // 2,
                              "fit_config": getattr(m, "fit_config", None), "repr": repr(m)})
    for label, (hooks, cfg) in conditions.items():
        results[label] = {}
        for t in tasks:
            n = args.mmlu_limit if t == "mmlu" else limit(t, "test")
            results[label][t] = evaluate(model, t, hooks, label=label, prompting=label == "prompting", split="test",
                                         limit=n, data_dir=args.data_dir, batch_size=args.batch_size, progress=False,
                                         model_name=args.model, config=cfg)
            write_json(results[label][t], out / "cells")
        print(f"test {label:28s} " + "  ".join(f"{t}={results[label][t].value:.3f}" for t in tasks))

    comparisons, verdict = compare_all(results, tasks, best_baseline)

    # -- gate selectivity ------------------------------------------------------------------------------------
    held_out = {t: build_contrast(t, args.data_dir, "val", limit=args.gate_limit, max_pairs=args.gate_limit,
                                  seed=args.seed) for t in TASKS}
    held_out["paradetox"] = load_paradetox(args.data_dir, limit=args.gate_limit, seed=args.seed)
    gate_rows = gate_selectivity(model, mat, {s.attribute if k != "paradetox" else k: s for k, s in held_out.items()})
    plot_gates(gate_rows, out / "gates.png", title=f"MAT-Steer gates ({args.model}, layer {layer}, {site})")

    summary = {
        **log, "tasks": tasks,
        "test": {label: {t: {"value": r.value, "headline": r.headline, "n": r.n,
                             "ci95": [r.metrics[r.headline].low, r.metrics[r.headline].high],
                             "metrics": {k: v.as_dict() for k, v in r.metrics.items()}}
                         for t, r in per.items()} for label, per in results.items()},
        "comparisons": comparisons, "gates": [g.as_dict() for g in gate_rows],
        "target_above_every_baseline": not verdict, "losses": verdict,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    atomic_write_text(out / "results.md", render(summary))
    print(render(summary))
    print(f"total {summary['seconds']:.0f}s; {out / 'summary.json'}")
    return 0


def compare_all(results: dict[str, dict[str, EvalResult]], tasks: list[str], best_baseline: str) -> tuple[list, list]:
    """Every condition against base and against the best baseline (chosen on val), on the same items."""
    comparisons = []
    for label in results:
        for ref in ("none", best_baseline):
            if label == ref or label == "none":
                continue
            for t in tasks:
                c = results[ref][t].compare(results[label][t])
                comparisons.append({"method": label, "against": ref, "task": t, **c.as_dict()})
    verdict = [f"{t}: {TARGET} {results[TARGET][t].value:.3f} vs {m} {results[m][t].value:.3f}"
               for t in TASKS for m in (*BASELINES, "prompting") if results[m][t].value >= results[TARGET][t].value]
    return comparisons, verdict


def resummarise(out: Path) -> int:
    """Recompute the comparisons and tables of a finished run from its cells (per-item values are stored)."""
    s = json.loads((out / "summary.json").read_text())
    results: dict[str, dict[str, EvalResult]] = {}
    for p in sorted((out / "cells").glob("*.json")):
        r = EvalResult.from_dict(json.loads(p.read_text()))
        results.setdefault(r.method, {})[r.task] = r
    s["comparisons"], s["losses"] = compare_all(results, s["tasks"], s["selected"]["best_baseline_on_val"])
    s["target_above_every_baseline"] = not s["losses"]
    atomic_write_text(out / "summary.json", json.dumps(s, indent=2, default=str))
    atomic_write_text(out / "results.md", render(s))
    print(render(s))
    return 0


def render(s: dict[str, Any]) -> str:
    """Markdown tables of a summary: test values with intervals, paired comparisons, gate selectivity."""
    tasks = s["tasks"]
    lines = ["| condition | " + " | ".join(f"{t} ({s['test']['none'][t]['headline']})" for t in tasks) + " |",
             "|---|" + "---|" * len(tasks)]
    for label, per in s["test"].items():
        cells = [f"{100 * per[t]['value']:.1f} [{100 * per[t]['ci95'][0]:.1f}, {100 * per[t]['ci95'][1]:.1f}]"
                 for t in tasks]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| n | " + " | ".join(str(s["test"]["none"][t]["n"]) for t in tasks) + " |")
    lines += ["", "Paired differences (condition − reference, percentage points, 95% paired-bootstrap interval; "
              "McNemar exact p for accuracies):", "", "| condition | vs | task | Δ | 95% CI | McNemar p |",
              "|---|---|---|---|---|---|"]
    for c in s["comparisons"]:
        p = "" if c["mcnemar_p"] is None else f"{c['mcnemar_p']:.3g}"
        lines.append(f"| {c['method']} | {c['against']} | {c['task']} | {100 * c['diff']:+.1f} | "
                     f"[{100 * c['ci95'][0]:+.1f}, {100 * c['ci95'][1]:+.1f}] | {p} |")
    lines += ["", "Gate selectivity (mean gate on positive / negative held-out texts, AUC negative > positive):", "",
              "| gate | texts | mean gate + | mean gate − | AUC |", "|---|---|---|---|---|"]
    for g in s["gates"]:
        lines.append(f"| {g['attribute']} | {g['eval_set']} | {g['mean_positive']:.2f} | {g['mean_negative']:.2f} | "
                     f"{g['auc']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
