"""``tl-steer``: evaluate and fit steering methods from the command line.

    tl-steer eval --model smollm2-135m-instruct --task truthfulqa_mc2 --method mat-steer --load fits/mat --limit 100
    tl-steer fit  --model smollm2-135m-instruct --method mat-steer --task truthfulqa_mc2 toxigen bbq --out fits/mat
    tl-steer table --results results/          # rebuild results.md (and --plot results.png)
    tl-steer splits [--force]                  # (re)write the seeded split index files

``--model tiny`` boots the tiny random test model. Results go to ``--out`` as one JSON per (model, task, method,
split) plus ``results.md``. ``eval --method X`` without ``--load`` fits X on the train split of the evaluated
task(s) first (``--fit-tasks`` to choose them).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import SteeringError


def load_model(name: str, device: str | None = None) -> Any:
    from . import models

    if name == "tiny":
        return models.tiny_model(n_ctx=1024)
    if name == "tiny-hf":
        return models.tiny_hf_model()
    return models.load(name, device=device)


def _task_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for kv in args.task_option or []:
        if "=" not in kv:
            raise SteeringError(f"--task-option takes key=value, got {kv!r} (e.g. shots=0, primer=true)")
        k, v = kv.split("=", 1)
        low = v.lower()
        opts[k] = True if low == "true" else False if low == "false" else int(v) if v.lstrip("-").isdigit() else v
    return opts


def _fit_opts(args: argparse.Namespace) -> Any:
    from .eval.steering import FitOptions

    extra: dict[str, Any] = {}
    if args.method == "mat-steer":  # MAT-Steer-only knobs; the other methods ignore them
        if args.kernel:
            extra["kernel"] = args.kernel
        if args.epochs:
            extra["epochs"] = args.epochs
    return FitOptions(layer=args.layer, site=args.site, k=args.k, seed=args.seed, batch_size=args.batch_size,
                      progress=not args.quiet, extra=extra)


def _fit(args: argparse.Namespace, model: Any, tasks: Sequence[str]) -> Any:
    from .eval import steering
    from .eval.pairs import build_contrast

    sets = [build_contrast(t, args.data_dir, "train", limit=args.fit_limit, max_pairs=args.max_pairs, seed=args.seed,
                           **_task_options(args)) for t in tasks]
    # one set per attribute (truthfulqa_mc1/mc2 share theirs)
    uniq = list({s.attribute: s for s in sets}.values())
    return steering.fit(args.method, model, uniq, _fit_opts(args))


def cmd_fit(args: argparse.Namespace) -> int:
    from . import io
    from .eval.steering import FITTED, parse_method

    args.method = parse_method(args.method)
    if args.method not in FITTED:
        raise SteeringError(f"--method {args.method!r} has nothing to fit; choose one of {', '.join(FITTED)}")
    model = load_model(args.model, args.device)
    fitted = _fit(args, model, args.task)
    path = io.save(fitted, args.out, model=model, tasks=list(args.task), layer=args.layer, seed=args.seed)
    print(f"saved {args.method} fitted on {', '.join(args.task)} (train split) to {path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .eval import steering
    from .eval.report import read_results, write_json, write_markdown
    from .eval.run import evaluate

    method = steering.parse_method(args.method)
    model = load_model(args.model, args.device)
    hooks: list = []
    cfg: dict[str, Any] = {"positions": args.positions, "strength": args.strength}
    if method in steering.FITTED:
        if args.load:
            fitted = steering.load(method, args.load, model)
            cfg["loaded_from"] = str(args.load)
        else:
            args.method = method
            fit_tasks = args.fit_tasks or args.task
            fitted = _fit(args, model, fit_tasks)
            cfg.update(fit_tasks=list(fit_tasks), layer=args.layer, seed=args.seed)
        hooks = steering.hooks(method, fitted, model, args.positions, args.strength)
    for task in args.task:
        res = evaluate(model, task, hooks, method=method, split=args.split, limit=args.limit, data_dir=args.data_dir,
                       batch_size=args.batch_size, progress=not args.quiet, model_name=args.model,
                       task_options=_task_options(args), config=cfg)
        e = res.metrics[res.headline]
        print(f"{res.task} {res.method} {res.headline} = {e.value:.4f} [{e.low:.4f}, {e.high:.4f}] (n={res.n}, "
              f"{res.seconds:.1f}s)")
        if args.out:
            print(f"  -> {write_json(res, args.out)}")
    if args.out:
        md = write_markdown(read_results(args.out), Path(args.out) / "results.md")
        print(f"table: {md}")
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from .eval.report import markdown_table, plot, read_results, write_markdown

    results = read_results(args.results)
    print(markdown_table(results), end="")
    write_markdown(results, Path(args.results) / "results.md")
    if args.plot:
        print(f"plot: {plot(results, args.plot)}")
    return 0


def cmd_splits(args: argparse.Namespace) -> int:
    from .eval.splits import split_path, write_split
    from .eval.tasks import TASKS, load_task

    done: set[str] = set()
    for name, spec in TASKS.items():
        if spec.pool in done:
            continue
        done.add(spec.pool)
        if split_path(spec.pool, args.split_dir).is_file() and not args.force:
            print(f"{spec.pool}: exists (use --force to rewrite)")
            continue
        n = len(load_task(name, args.data_dir))
        print(f"{spec.pool}: {n} items -> {write_split(spec.pool, n, args.seed, split_dir=args.split_dir)}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2-135m-instruct", help="model name, or 'tiny' for the test model")
    p.add_argument("--device", default=None, help="cpu / cuda (default: cuda when available)")
    p.add_argument("--data-dir", default=None, help="datasets folder (default: $TL_STEER_DATA or ../shared/data)")
    p.add_argument("--task-option", action="append", metavar="KEY=VALUE",
                   help="loader option, e.g. primer=true (TruthfulQA), shots=0 (MMLU)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layer", type=int, default=None, help="steering layer (default n_layers // 2)")
    p.add_argument("--site", default=None, help="hook site (default: resid_pre; SADI: z)")
    p.add_argument("--k", type=int, default=None, help="ITI heads / SADI elements")
    p.add_argument("--kernel", default=None, choices=["gaussian", "median", "multiscale"], help="MAT-Steer MMD kernel")
    p.add_argument("--epochs", type=int, default=None, help="MAT-Steer epochs")
    p.add_argument("--fit-limit", type=int, default=None, help="use the first N train items per task for fitting")
    p.add_argument("--max-pairs", type=int, default=None, help="at most N contrastive pairs per task (seeded)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    from .eval.steering import METHODS
    from .eval.tasks import TASKS

    parser = argparse.ArgumentParser(prog="tl-steer", description="Activation steering: fit and evaluate.")
    sub = parser.add_subparsers(dest="command", required=True)

    pe = sub.add_parser("eval", help="score tasks with or without steering")
    _common(pe)
    pe.add_argument("--task", nargs="+", required=True, choices=list(TASKS), metavar="TASK",
                    help=f"one or more of: {', '.join(TASKS)}")
    pe.add_argument("--method", default="none", choices=list(METHODS))
    pe.add_argument("--load", default=None, help="directory of a method saved by `tl-steer fit`")
    pe.add_argument("--fit-tasks", nargs="+", default=None, choices=list(TASKS), metavar="TASK",
                    help="without --load: fit on the train split of these tasks (default: the evaluated ones)")
    pe.add_argument("--positions", default=None, help="position scope, e.g. all, last_prompt, last_prompt+generated")
    pe.add_argument("--strength", type=float, default=None, help="coef (CAA, MAT-Steer) / alpha (ITI) / delta (SADI)")
    pe.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    pe.add_argument("--limit", type=int, default=None, help="first N items of the split (seeded order)")
    pe.add_argument("--out", default=None, help="results directory (JSON per run + results.md)")
    pe.set_defaults(func=cmd_eval)

    pf = sub.add_parser("fit", help="fit a steering method on the train split and save it")
    _common(pf)
    pf.add_argument("--method", required=True, choices=[m for m in METHODS if m not in ("none", "prompting")])
    pf.add_argument("--task", nargs="+", required=True, choices=list(TASKS), metavar="TASK")
    pf.add_argument("--out", required=True, help="directory to save the fitted method in")
    pf.set_defaults(func=cmd_fit)

    pt = sub.add_parser("table", help="markdown table (and plot) of a results directory")
    pt.add_argument("--results", required=True)
    pt.add_argument("--plot", default=None, help="write a bar plot here (PNG)")
    pt.set_defaults(func=cmd_table)

    ps = sub.add_parser("splits", help="write the seeded split index files")
    ps.add_argument("--data-dir", default=None)
    ps.add_argument("--split-dir", default=None)
    ps.add_argument("--seed", type=int, default=0)
    ps.add_argument("--force", action="store_true")
    ps.set_defaults(func=cmd_splits)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SteeringError as e:
        print(f"tl-steer: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
