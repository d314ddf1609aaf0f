"""MAT-Steer's Table 1, on SmolLM2-135M-Instruct: base vs prompting vs CAA vs ITI vs SADI vs MAT-Steer.

All fitted methods see the same training texts: the contrast sets of TruthfulQA, ToxiGen and BBQ built from each
task's *train* split (``tl_steer/eval/splits``). CAA, ITI and SADI are fitted on the union of the three sets;
MAT-Steer learns one gated direction per attribute, jointly. Every number is on the *test* split (the first
``--limit`` items of its seeded order), with its sample size and 95% interval; MMLU measures capability retention.

    python benchmarks/paper_table.py                        # CPU defaults: small limits (~15-25 min on 2 cores)
    python benchmarks/paper_table.py --limit 400 --device cuda --mmlu-shots 5
    python benchmarks/paper_table.py --methods none caa --layer 12 --fit-option kernel=median

The methods, their strength grids and their fit options come from the registry (:mod:`tl_steer.registry`). By
default (``--select-on-val``) each fitted method's strength is picked from its grid by the mean headline score over
the three tasks on the *val* split (``--val-limit`` items each) before the test run; each method is fitted with its
own defaults unless ``--fit-option KEY=VALUE`` says otherwise. Results: one JSON per run, ``results.md`` and
``results.png`` in ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from tl_steer import registry  # noqa: E402
from tl_steer.eval import steering  # noqa: E402
from tl_steer.eval.pairs import build_contrast  # noqa: E402
from tl_steer.eval.report import markdown_table, plot, write_json, write_markdown  # noqa: E402
from tl_steer.eval.run import evaluate  # noqa: E402
from tl_steer.models import load_named as load_model  # noqa: E402

TASKS = ("truthfulqa_mc2", "toxigen", "bbq")
ALL_METHODS = (*steering.BASELINES, *steering.fitted_names())
#: strengths tried on val for every fitted method: each method's registered grid (4 values each, a fair budget)
GRID = {spec.name: list(spec.grid) for spec in registry.specs()}


def _value(v: str) -> object:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--device", default=None, help="cpu / cuda (default: cuda when available)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--methods", nargs="+", default=list(ALL_METHODS), choices=ALL_METHODS)
    ap.add_argument("--target", default="mat-steer", choices=ALL_METHODS,
                    help="the paper's method, compared against every other (default: %(default)s, as in its Table 1)")
    ap.add_argument("--limit", type=int, default=60, help="test items per task")
    ap.add_argument("--mmlu-limit", type=int, default=60, help="MMLU test items (0: skip MMLU)")
    ap.add_argument("--mmlu-shots", type=int, default=0, help="MMLU exemplars (paper standard 5; 0 is ~6x cheaper)")
    ap.add_argument("--fit-limit", type=int, default=80, help="train items per task used to build contrast pairs")
    ap.add_argument("--max-pairs", type=int, default=160, help="at most this many pairs per task")
    ap.add_argument("--layer", type=int, default=None, help="steering layer (default n_layers // 2)")
    ap.add_argument("--k", type=int, default=None, help="ITI heads / SADI elements (method defaults)")
    ap.add_argument("--fit-option", action="append", default=[], metavar="KEY=VALUE",
                    help="a method's own fit option (goes to the methods that declare it), e.g. preset=reference, "
                         "epochs=50; registered: " + ", ".join(f"{s.name}: {[o.name for o in s.options]}"
                                                             for s in registry.specs() if s.options))
    ap.add_argument("--strength", action="append", default=[], metavar="METHOD=VALUE",
                    help="fixed strength per method, e.g. caa=2 iti=10 (coef / alpha / delta)")
    ap.add_argument("--positions", action="append", default=[], metavar="METHOD=SCOPE",
                    help="position scope per method, e.g. sadi=last_prompt+generated")
    ap.add_argument("--select-on-val", action=argparse.BooleanOptionalAction, default=True,
                    help="choose every fitted method's strength from GRID on the val split first (default on; "
                         "--no-select-on-val uses the methods' default strengths)")
    ap.add_argument("--val-limit", type=int, default=20, help="val items per task for strength selection")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/paper_table")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))))
    t_start = time.perf_counter()
    model = load_model(args.model, args.device)
    dev = str(model.cfg.device)
    print(f"model {args.model} on {dev}; layers {model.cfg.n_layers}; limits test {args.limit}, mmlu {args.mmlu_limit}")
    strengths = {k: float(v) for k, v in (s.split("=", 1) for s in args.strength)}
    scopes = dict(s.split("=", 1) for s in args.positions)
    fitted_methods = [m for m in args.methods if m not in steering.BASELINES]

    fitted: dict = {}
    fit_options: dict = {}
    if fitted_methods:
        t0 = time.perf_counter()
        sets = [build_contrast(t, args.data_dir, "train", limit=args.fit_limit, max_pairs=args.max_pairs,
                               seed=args.seed) for t in TASKS]
        print("contrast sets (train split): " + ", ".join(f"{s.attribute} {len(s.positive)} pairs" for s in sets))
        extra = {k: _value(v) for k, v in (kv.split("=", 1) for kv in args.fit_option)}
        takes = {o.name for m in fitted_methods for o in registry.get(m).options}
        if set(extra) - takes:
            ap.error(f"--fit-option {sorted(set(extra) - takes)}: none of {fitted_methods} takes it")
        fit_options = {m: {o.name: extra[o.name] for o in registry.get(m).options if o.name in extra}
                       for m in fitted_methods}
        opts = steering.FitOptions(layer=args.layer, k=args.k, seed=args.seed, read_batch_size=args.batch_size,
                                   progress=not args.quiet, extra=extra)
        fitted = steering.fit_many(fitted_methods, model, sets, opts)  # one activation pass for all methods
        print(f"fitted {', '.join(repr(f) for f in fitted.values())} in {time.perf_counter() - t0:.0f}s")

    def run(method: str, task: str, split: str, limit: int, strength: float | None, **task_options):
        hooks = steering.hooks(method, fitted[method], model, scopes.get(method), strength) if method in fitted else []
        cfg = {"strength": strength, "positions": scopes.get(method) or steering.default_positions(method),
               "layer": args.layer if args.layer is not None else model.cfg.n_layers // 2,
               "fit_tasks": list(TASKS), "fit_limit": args.fit_limit, "max_pairs": args.max_pairs, "device": dev,
               "fit_options": fit_options.get(method, {}),
               **({"fit_config": getattr(fitted[method], "fit_config", None)} if method in fitted else {})}
        return evaluate(model, task, hooks, label=method, prompting=method == "prompting", split=split, limit=limit, data_dir=args.data_dir,
                        batch_size=args.batch_size, progress=not args.quiet, model_name=args.model,
                        task_options=task_options, config=cfg)

    if args.select_on_val:
        for m in fitted_methods:
            if m in strengths:
                continue
            best = None
            for s in GRID[m]:
                score = sum(run(m, t, "val", args.val_limit, s).value for t in TASKS) / len(TASKS)
                print(f"  val {m} strength {s}: mean headline {score:.4f}")
                if best is None or score > best[1]:
                    best = (s, score)
            strengths[m] = best[0]
            print(f"selected {m} strength {best[0]} on val")

    results = []
    out = Path(args.out)
    for m in args.methods:
        for t in TASKS:
            r = run(m, t, "test", args.limit, strengths.get(m))
            results.append(r)
            write_json(r, out)
            e = r.metrics[r.headline]
            print(f"{m:10s} {t:15s} {r.headline}={e.value:.4f} [{e.low:.4f}, {e.high:.4f}] n={r.n} ({r.seconds:.0f}s)")
        if args.mmlu_limit:
            r = run(m, "mmlu", "test", args.mmlu_limit, strengths.get(m), shots=args.mmlu_shots)
            results.append(r)
            write_json(r, out)
            print(f"{m:10s} {'mmlu':15s} acc={r.value:.4f} n={r.n} ({r.seconds:.0f}s)")

    cols = ["truthfulqa_mc2:mc1", "truthfulqa_mc2:mc2", "toxigen:acc", "bbq:acc", "bbq:acc_ambig",
            "bbq:acc_disambig", "bbq:bias_ambig", "bbq:bias_disambig"] + (["mmlu:acc"] if args.mmlu_limit else [])
    table = markdown_table(results, cols)
    print("\n" + table)
    write_markdown(results, out / "results.md", title=f"Paper table: {args.model} ({dev})")
    try:
        plot([r for r in results if r.task in TASKS], out / "results.png")
    except Exception as e:  # noqa: BLE001 - the plot is optional
        print(f"(no plot: {e})")

    target = args.target
    if target in args.methods:
        by = {(r.method, r.task): r for r in results}
        losses = []
        for t in TASKS:
            mine = by[(target, t)]
            for m in args.methods:
                if m != target and by[(m, t)].value >= mine.value:
                    losses.append(f"{t}: {m} {by[(m, t)].value:.4f} >= {target} {mine.value:.4f}")
        if losses:
            print(f"{target} is NOT above every baseline on every task:\n  " + "\n  ".join(losses))
        else:
            print(f"{target} is above every baseline on all three tasks (point estimates; see the intervals).")
    print(f"strengths: {strengths or 'method defaults'}")
    print(f"total {time.perf_counter() - t_start:.0f}s; JSON per cell in {out}/, table in {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
