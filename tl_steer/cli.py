"""``tl-steer``: evaluate and fit steering methods from the command line.

    tl-steer fit  --model smollm2-135m-instruct --method METHOD --task truthfulqa_mc2 toxigen bbq --out fits/m
    tl-steer eval --model smollm2-135m-instruct --task truthfulqa_mc2 --load fits/m --limit 100
    tl-steer table --results results/          # rebuild results.md (and --plot results.png)
    tl-steer splits [--force]                  # (re)write the seeded split index files

``--model tiny`` boots the tiny random test model. Results go to ``--out`` as one JSON per (model, task, method,
split) plus ``results.md``. ``eval --method X`` without ``--load`` fits X on the train split of the evaluated
task(s) first (``--fit-tasks`` to choose them). METHOD is any registered method (``tl-steer fit --help`` lists them).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._types import TransformerBridge
from .errors import SteeringError


def load_model(name: str, device: str | None = None) -> Any:
    """The model a CLI run names ([`tl_steer.models.load_named()`][tl_steer.models.load_named])."""
    from .models import load_named

    return load_named(name, device)


def _parse_task_options(args: argparse.Namespace) -> list[tuple[str | None, str, Any]]:
    out: list[tuple[str | None, str, Any]] = []
    for kv in args.task_option or []:
        if "=" not in kv:
            raise SteeringError(f"--task-option takes [TASK:]KEY=VALUE, got {kv!r} (e.g. shots=0, mmlu:shots=0)")
        k, v = kv.split("=", 1)
        task, _, key = k.rpartition(":")
        low = v.lower()
        value = True if low == "true" else False if low == "false" else int(v) if v.lstrip("-").isdigit() else v
        out.append((task or None, key, value))
    return out


def _task_options(args: argparse.Namespace, task: str) -> dict[str, Any]:
    """The ``--task-option`` values meant for ``task``: ``TASK:KEY=VALUE`` for that task, ``KEY=VALUE`` for every task
    whose loader takes KEY. An option that no selected task takes is an error."""
    import inspect

    from .eval.tasks import get_task

    tasks = list(dict.fromkeys(list(args.task) + list(getattr(args, "fit_tasks", None) or [])))
    takes = {t: set(inspect.signature(get_task(t).loader).parameters) - {"data_dir"} for t in tasks}
    opts: dict[str, Any] = {}
    for scope, key, value in _parse_task_options(args):
        if scope is not None and scope not in takes:
            raise SteeringError(f"--task-option {scope}:{key}: {scope!r} is not among the tasks ({', '.join(tasks)})")
        targets = [scope] if scope is not None else [t for t in tasks if key in takes[t]]
        if not targets or any(key not in takes[t] for t in targets):
            known = {t: sorted(v) for t, v in takes.items() if v}
            raise SteeringError(f"--task-option {key}: no selected task takes it; options by task: {known or 'none'}")
        if get_task(task).name in targets or task in targets:
            opts[key] = value
    return opts


def _method_flags(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """``{method: {option: value}}`` for every method-specific flag given on the command line."""
    from . import registry

    given: dict[str, dict[str, Any]] = {}
    for spec in registry.specs():
        for opt in spec.options:
            value = getattr(args, f"opt_{opt.name}", None)
            if value is not None:
                given.setdefault(spec.name, {})[opt.name] = value
    return given


def _fit_opts(args: argparse.Namespace, method: str) -> Any:
    from .registry import FitOptions, get

    own = {o.name for o in get(method).options}
    flags = {k: v for opts in _method_flags(args).values() for k, v in opts.items()}
    foreign = sorted(set(flags) - own)
    if foreign:
        raise SteeringError(
            f"{', '.join('--' + f.replace('_', '-') for f in foreign)} do not apply to --method {method}"
        )
    return FitOptions(layer=args.layer, site=args.site, k=args.k, seed=args.seed, read_batch_size=args.read_batch_size or args.batch_size,
                      progress=not args.quiet, extra=flags)


def _fit(args: argparse.Namespace, model: TransformerBridge, method: str, tasks: Sequence[str]) -> Any:
    import time

    from .eval import steering
    from .eval.pairs import build_contrast

    sets = [build_contrast(t, args.data_dir, "train", limit=args.fit_limit, max_pairs=args.max_pairs, seed=args.seed,
                           **_task_options(args, t)) for t in tasks]
    # one set per attribute (truthfulqa_mc1/mc2 share theirs)
    uniq = list({s.attribute: s for s in sets}.values())
    opts = _fit_opts(args, method)
    t0 = time.perf_counter()
    fitted = steering.fit(method, model, uniq, opts)
    pairs = ", ".join(f"{s.attribute} {len(s.positive)}/{len(s.negative)}" for s in uniq)
    print(f"fitted {fitted!r} on {pairs} (positive/negative texts) in {time.perf_counter() - t0:.1f}s")
    return fitted


def cmd_fit(args: argparse.Namespace) -> int:
    """``tl-steer fit``: fit a method on task contrast sets and save it."""
    from . import io
    from .eval.steering import parse_method

    method = parse_method(args.method)
    if (Path(args.out) / io.MANIFEST).exists() and not args.force:  # fail before the (slow) fit, not after
        raise SteeringError(f"{args.out} already holds a saved method; pass --force to replace it")
    model = load_model(args.model, args.device)
    fitted = _fit(args, model, method, args.task)
    path = io.save(fitted, args.out, model=model, overwrite=args.force, tasks=list(args.task), layer=args.layer,
                   seed=args.seed)
    print(f"saved {method} fitted on {', '.join(args.task)} (train split) to {path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """``tl-steer eval``: score tasks with or without a (fitted or loaded) method."""
    from .eval import steering
    from .eval.report import read_results, write_json, write_markdown
    from .eval.run import evaluate

    method = steering.parse_method(args.method) if args.method else None
    if args.load:
        fit_only = ["--fit-tasks"] * bool(args.fit_tasks) + [
            "--" + k.replace("_", "-") for opts in _method_flags(args).values() for k in opts]
        if fit_only:
            raise SteeringError(f"{', '.join(fit_only)} configure fitting and cannot be used with --load")
    model = load_model(args.model, args.device)
    hooks: list = []
    cfg: dict[str, Any] = {"positions": args.positions, "strength": args.strength}
    if args.load:
        method, fitted = steering.load_fitted(args.load, model, method)
        cfg["loaded_from"] = str(args.load)
        hooks = steering.hooks(method, fitted, model, args.positions, args.strength)
    elif method not in (None, *steering.BASELINES):
        fit_tasks = args.fit_tasks or args.task
        fitted = _fit(args, model, method, fit_tasks)
        cfg.update(fit_tasks=list(fit_tasks), layer=args.layer, seed=args.seed)
        hooks = steering.hooks(method, fitted, model, args.positions, args.strength)
    method = method or "none"
    for task in args.task:
        res = evaluate(model, task, hooks, label=method, prompting=method == "prompting", split=args.split, limit=args.limit, data_dir=args.data_dir,
                       batch_size=args.batch_size, progress=not args.quiet, model_name=args.model,
                       task_options=_task_options(args, task), config=cfg, shared_prompt=args.shared_prompt)
        e = res.metrics[res.headline]
        print(f"{res.task} {res.method} {res.headline} = {e.value:.4f} [{e.low:.4f}, {e.high:.4f}] (n={res.n}, "
              f"{res.seconds:.1f}s)")
        others = [k for k in res.metrics if k != res.headline]
        if others:
            print("  " + "; ".join(f"{k} = {res.metrics[k].value:.4f} [{res.metrics[k].low:.4f}, "
                                   f"{res.metrics[k].high:.4f}] (n={res.metrics[k].n})" for k in others))
        if args.out:
            print(f"  -> {write_json(res, args.out)}")
    if args.out:
        md = write_markdown(read_results(args.out), Path(args.out) / "results.md")
        print(f"table: {md}")
    else:
        print("(no --out given: nothing was written)")
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    """``tl-steer table``: a markdown table (and plot) of saved result files."""
    from .eval.report import markdown_table, plot, read_results, write_markdown

    results = read_results(args.results)
    print(markdown_table(results), end="")
    write_markdown(results, Path(args.results) / "results.md")
    if args.plot:
        print(f"plot: {plot(results, args.plot)}")
    return 0


def cmd_splits(args: argparse.Namespace) -> int:
    """``tl-steer splits``: write the stored train/val/test index files."""
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
    from . import registry

    p.add_argument("--model", default="smollm2-135m-instruct",
                   help="model name (default %(default)s), or 'tiny' / 'tiny-hf' for the random test models")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--data-dir", default=None, help="datasets folder (default: $TL_STEER_DATA or ../shared/data)")
    p.add_argument("--task-option", action="append", metavar="[TASK:]KEY=VALUE",
                   help="task loader option, e.g. primer=true (TruthfulQA), mmlu:shots=0; KEY=VALUE goes to every "
                        "task that takes KEY")
    p.add_argument("--batch-size", type=int, default=8, help="rows per scoring forward (default %(default)s)")
    p.add_argument("--read-batch-size", type=int, default=None,
                   help="contrast texts per forward when fitting (default: --batch-size)")
    p.add_argument("--shared-prompt", action="store_true",
                   help="run each item's prompt once and score its choices on the KV cache (same scores within 1e-4; "
                        "faster with long prompts and many choices, e.g. TruthfulQA)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch, e.g. --threads 1 on a shared 2-core machine (default: torch's own)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default %(default)s)")
    p.add_argument("--layer", type=int, default=None, help="steering layer of single-site methods (default n_layers // 2)")
    p.add_argument("--site", default=None, help="hook site, e.g. resid_pre, z, mlp_post (default: each method's own)")
    p.add_argument("--k", type=int, default=None, help="elements to select, for methods that select (heads, neurons)")
    p.add_argument("--fit-limit", type=int, default=None, help="use the first N train items per task for fitting")
    p.add_argument("--max-pairs", type=int, default=None, help="at most N contrastive pairs per task (seeded)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="print the full traceback on errors")
    seen: dict[str, list[str]] = {}
    for spec in registry.specs():
        for opt in spec.options:
            seen.setdefault(opt.name, []).append(spec.name)
    for spec in registry.specs():
        for opt in spec.options:
            if seen[opt.name][0] != spec.name:
                continue
            p.add_argument("--" + opt.name.replace("_", "-"), dest=f"opt_{opt.name}", type=opt.type,
                           choices=opt.choices, default=None,
                           help=f"[{'/'.join(seen[opt.name])}] {opt.help}")


def build_parser() -> argparse.ArgumentParser:
    """The ``tl-steer`` argument parser (its help text lists every flag with an example)."""
    from . import registry
    from ._version import __version__
    from .eval.steering import BASELINES, conditions
    from .eval.tasks import TASKS

    methods_help = "; ".join(f"{s.name}: {s.summary} (strength: {s.strength})" for s in registry.specs())
    parser = argparse.ArgumentParser(
        prog="tl-steer", description="Activation steering: fit and evaluate steering methods on the papers' tasks.",
        epilog="examples:\n"
               f"  tl-steer fit --method {registry.names()[0]} --task toxigen --out fits/v\n"
               "  tl-steer eval --task toxigen --load fits/v --strength 4 --limit 50 --out results/\n"
               "  tl-steer eval --task truthfulqa_mc2 --method none --task-option primer=true\n"
               "  tl-steer table --results results/ --plot results/plot.png",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tl-steer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    pe = sub.add_parser("eval", help="score tasks with or without steering", epilog=f"methods: {methods_help}")
    _common(pe)
    pe.add_argument("--task", nargs="+", required=True, choices=list(TASKS), metavar="TASK",
                    help=f"one or more of: {', '.join(TASKS)}")
    pe.add_argument("--method", default=None, choices=list(conditions()),
                    help="condition to evaluate (default: none, or the method saved in --load)")
    pe.add_argument("--load", default=None, help="directory of a method saved by `tl-steer fit` (its method is used)")
    pe.add_argument("--fit-tasks", nargs="+", default=None, choices=list(TASKS), metavar="TASK",
                    help="without --load: fit on the train split of these tasks (default: the evaluated ones)")
    pe.add_argument("--positions", default=None,
                    help="position scope, e.g. all, last_prompt, last_prompt+generated (default: the method's)")
    pe.add_argument("--strength", type=float, default=None, help="the method's strength (default: the fitted one)")
    pe.add_argument("--split", default="test", choices=["train", "val", "test", "all", "sealed"])
    pe.add_argument("--limit", type=int, default=None, help="first N items of the split (seeded order)")
    pe.add_argument("--out", default=None, help="results directory (JSON per run + results.md)")
    pe.set_defaults(func=cmd_eval)

    pf = sub.add_parser("fit", help="fit a steering method on the train split and save it",
                        epilog=f"methods: {methods_help}")
    _common(pf)
    pf.add_argument("--method", required=True, choices=[m for m in conditions() if m not in BASELINES])
    pf.add_argument("--task", nargs="+", required=True, choices=list(TASKS), metavar="TASK")
    pf.add_argument("--out", required=True, help="directory to save the fitted method in")
    pf.add_argument("--force", action="store_true", help="replace a method already saved in --out")
    pf.set_defaults(func=cmd_fit)

    pt = sub.add_parser("table", help="markdown table (and plot) of a results directory")
    pt.add_argument("--results", required=True)
    pt.add_argument("--plot", default=None, help="write a bar plot here (PNG)")
    pt.add_argument("--debug", action="store_true", help="print the full traceback on errors")
    pt.set_defaults(func=cmd_table)

    ps = sub.add_parser("splits", help="write the seeded split index files")
    ps.add_argument("--data-dir", default=None)
    ps.add_argument("--split-dir", default=None)
    ps.add_argument("--seed", type=int, default=0)
    ps.add_argument("--force", action="store_true")
    ps.add_argument("--debug", action="store_true", help="print the full traceback on errors")
    ps.set_defaults(func=cmd_splits)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; every failure is one line ``tl-steer: error: ...`` and exit code 2 (``--debug``: traceback)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return _main(argv)
    except BrokenPipeError:  # `tl-steer ... | head`: the reader left early; not an error of ours
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
        except (OSError, ValueError, AttributeError):
            pass
        return 0


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "threads", None) is not None:
            if args.threads < 1:
                raise SteeringError(f"--threads must be >= 1, got {args.threads}")
            import torch

            torch.set_num_threads(args.threads)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("tl-steer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise
    except Exception as e:  # noqa: BLE001 - the CLI's contract: one line, exit 2
        if getattr(args, "debug", False):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, SteeringError):
            print(f"tl-steer: error: {msg}", file=sys.stderr)
        else:
            print(f"tl-steer: error: {type(e).__name__}: {msg} (rerun with --debug for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
