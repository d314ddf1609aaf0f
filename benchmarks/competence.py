"""Where is the base model competent? Every formulation of every dataset, scored unsteered on val, against the
constant answers of the same items (issue 22, item 2).

A steering benchmark can only show steering where the unsteered model does better than a model that ignores the
question. Per model (SmolLM2-135M-Instruct, Gemma-3-270M) and task (every registered formulation: the harness's
cloze or letter prompt, the SADI reference's prompt, MMLU cloze / letter), on the first ``--limit`` val items:

* accuracy (and ``acc_norm`` where the task reports it) with its Wilson interval;
* the best constant answer on the same items (the majority baseline) and the answer the model gives most;
* balanced accuracy (a constant answer scores 1 / classes);
* for exact-match tasks, ``em`` and the share of greedy answers that are an option at all (format compliance);
* for letter formats (the options listed in the prompt: the SADI reference's prompts, MMLU's letter format), the
  items scored again under every cyclic order of their options and each item's ``acc`` averaged over the orders
  (``order_avg``; a model that only prefers a letter scores ``1 / k`` there, whatever the gold letters are);
* the **margin**: the better of ``acc`` / ``acc_norm`` minus the majority baseline; **competent** when the Wilson
  lower bound of that accuracy is above the majority baseline.

Per dataset (tasks sharing an item pool are formulations of the same items) the formulation with the largest margin
is the one a steering benchmark should use. One JSON per (model, task) cell under ``<out>/cells`` (a rerun skips
done cells); ``<out>/competence.md`` and ``competence.json`` summarise.

    python benchmarks/competence.py --models smollm2 gemma3 --limit 150
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tl_steer.eval.controls import prediction_controls  # noqa: E402
from tl_steer.eval.report import read_results, write_json  # noqa: E402
from tl_steer.eval.run import EvalResult, evaluate  # noqa: E402
from tl_steer.eval.splits import select  # noqa: E402
from tl_steer.eval.tasks import TASKS, load_task  # noqa: E402
from tl_steer.models import load_named  # noqa: E402

MODELS = {"smollm2": "smollm2-135m-instruct", "gemma3": "gemma3-270m", "tiny": "tiny-hf"}


def recontrol(r: EvalResult, data_dir: str | None = None) -> dict:
    """The controls of a stored cell, recomputed from its items and its stored predictions (no re-scoring), so a
    cell scored before a control changed reads the same as a new one."""
    spec = TASKS[r.task]
    items = select(load_task(r.task, data_dir, **(r.config.get("task_options") or {})), spec.pool, r.split,
                   r.config.get("limit"), data_dir=data_dir)
    if [it.meta.get("id", i) for i, it in enumerate(items)] != r.item_ids:
        raise SystemExit(f"{r.task}: the stored cell's items are not this split's any more; delete the cell and rerun")
    stored = {name: r.controls[f"predictions_{name}"] for name in ("acc", "acc_norm")
              if f"predictions_{name}" in r.controls}
    return {**r.controls, **prediction_controls(items, stored, spec.answer_strategies)}


@functools.cache
def n_orders(task: str, data_dir: str | None = None) -> int:
    """How many cyclic orders of its options a task is scored under: ``k`` for a letter format (its loader takes
    ``rotate``), 1 for a cloze one (each option scored alone: the order means nothing)."""
    spec = TASKS[task]
    if "rotate" not in inspect.signature(spec.loader).parameters:
        return 1
    return len(load_task(task, data_dir)[0].choices)


def order_folder(cells: Path, rotate: int) -> Path:
    """Where the cells of one option order live (order 0, the stored order, in ``cells`` itself)."""
    return cells if rotate == 0 else cells / f"rotate{rotate}"


def order_averaged(r: EvalResult, cells: Path, data_dir: str | None = None) -> tuple[float, int] | None:
    """``(order-averaged acc, k)`` of a letter-format cell from its sibling cells under the other cyclic orders (the
    same items), or None for a cloze task or while an order is missing."""
    k = n_orders(r.task, data_dir)
    if k == 1:
        return None
    runs = [r]
    for rot in range(1, k):
        folder = order_folder(cells, rot)
        same = [x for x in (read_results(folder) if folder.is_dir() else [])
                if (x.model, x.task, x.split, x.config.get("limit")) == (r.model, r.task, r.split, r.config.get("limit"))]
        if not same:
            return None
        if same[0].item_ids != r.item_ids:
            raise SystemExit(f"{r.task}: the cell of order {rot} scored other items; delete {folder} and rerun")
        runs.append(same[0])
    per = [sum(v) / k for v in zip(*(x.per_item["acc"] for x in runs), strict=True)]
    return sum(per) / len(per), k


def summarise(r: EvalResult, data_dir: str | None = None, cells: Path | None = None) -> dict:
    """One row: accuracy vs the constant answers of the same items (and, for a letter format whose other option
    orders are scored under ``cells``, the order-averaged accuracy)."""
    c = recontrol(r, data_dir)
    orders = order_averaged(r, cells, data_dir) if cells is not None else None
    accs = {m: r.metrics[m] for m in ("acc", "acc_norm") if m in r.metrics}
    best = max(accs, key=lambda m: accs[m].value)
    majority = c["majority"]["acc"]
    answers = c[f"answers_{best}"]
    top = max(answers.items(), key=lambda kv: kv[1])
    return {
        "model": r.model, "task": r.task, "pool": TASKS[r.task].pool, "n": r.n, "metric": best,
        "acc": accs[best].value, "low": accs[best].low, "high": accs[best].high,
        "majority": majority, "majority_answer": c["majority"]["answer"],
        "balanced": c[f"balanced_{best}"] if "random" not in c["constant_answers"] else None,
        # balanced accuracy is a control where the items share one option set (a constant answer is a strategy);
        # for cloze items (their own texts as options) it is not reported
        "classes": (0 if "random" in c["constant_answers"]
                    else len(set(c["constant_answers"]) - set(TASKS[r.task].answer_strategies))), "top_answer": top[0], "top_share": top[1],
        "em": r.metrics["em"].value if "em" in r.metrics else None, "format": c.get("format_compliance"),
        "margin": accs[best].value - majority, "competent": accs[best].low > majority,
        "order_avg": None if orders is None else orders[0], "orders": None if orders is None else orders[1],
    }


def table(rows: list[dict]) -> str:
    rows = sorted(rows, key=lambda x: (x["model"], x["pool"], -x["margin"]))
    best = {}
    for x in rows:
        best.setdefault((x["model"], x["pool"]), x["task"])
    out = ["| model | dataset | formulation | n | metric | accuracy [95% CI] | majority (answer) | balanced | most given "
           "| em / format | order-averaged acc (chance) | margin | competent |", "|" + "---|" * 13]
    for x in rows:
        mark = " **best**" if best[(x["model"], x["pool"])] == x["task"] else ""
        em = "–" if x["em"] is None else f"{100 * x['em']:.1f} / {100 * x['format']:.0f}%"
        balanced = "–" if x["balanced"] is None else f"{100 * x['balanced']:.1f} (chance {100 / x['classes']:.0f})"
        orders = ("–" if x.get("order_avg") is None
                  else f"{100 * x['order_avg']:.1f} ({100 / x['orders']:.0f}; {x['orders']} orders)")
        out.append(
            f"| {x['model']} | {x['pool']} | {x['task']}{mark} | {x['n']} | {x['metric']} | "
            f"{100 * x['acc']:.1f} [{100 * x['low']:.1f}, {100 * x['high']:.1f}] | {100 * x['majority']:.1f} "
            f"({x['majority_answer']}) | {balanced} | "
            f"{x['top_answer']} {100 * x['top_share']:.0f}% | {em} | {orders} | {100 * x['margin']:+.1f} | "
            f"{'yes' if x['competent'] else 'no'} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["smollm2", "gemma3"], choices=list(MODELS))
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--limit", type=int, default=150)
    ap.add_argument("--split", default="val", choices=["train", "val"])  # never test: competence is chosen on val
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="results/competence", type=Path)
    args = ap.parse_args(argv)
    cells = args.out / "cells"
    cells.mkdir(parents=True, exist_ok=True)
    def done(folder: Path, name: str) -> set[tuple[str, str]]:
        return {(r.task, r.split) for r in (read_results(folder) if folder.is_dir() else [])
                if r.model == name and r.config.get("limit") == args.limit}

    for name in args.models:
        todo = [(t, rot) for t in args.tasks for rot in range(n_orders(t, args.data_dir))
                if (t, args.split) not in done(order_folder(cells, rot), name)]
        if not todo:
            continue
        model = load_named(MODELS[name], device="cpu")
        for task, rot in todo:
            t0 = time.perf_counter()
            r = evaluate(model, task, [], label="none", split=args.split, limit=args.limit, data_dir=args.data_dir,
                         batch_size=args.batch_size, progress=False, model_name=name, shared_prompt=True,
                         task_options={"rotate": rot} if rot else None)
            write_json(r, order_folder(cells, rot))
            s = summarise(r, args.data_dir)
            print(f"[competence] {name} {task} (order {rot}): {s['metric']} {s['acc']:.3f} vs majority "
                  f"{s['majority']:.3f} ({s['majority_answer']}) in {time.perf_counter() - t0:.0f} s", flush=True)
        del model
    rows = [summarise(r, args.data_dir, cells) for r in read_results(cells)
            if r.split == args.split and r.config.get("limit") == args.limit and r.model in args.models]
    (args.out / "competence.json").write_text(json.dumps(rows, indent=1))
    md = table(rows)
    (args.out / "competence.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
