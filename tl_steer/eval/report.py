"""Results as JSON files, a markdown table and a bar plot with 95% intervals."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from ..errors import SteeringError
from ..io import atomic_write_text
from .metrics import Paired
from .run import EvalResult
from .tasks import TASKS, get_task


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-")


def _out_dir(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SteeringError(f"--out {out} is a file, not a directory; choose a directory for the results")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise SteeringError(f"cannot create the results directory {out} (permission denied); choose another") from None
    return out


def _write(path: Path, text: str) -> Path:
    try:
        return atomic_write_text(path, text)
    except PermissionError:
        raise SteeringError(f"cannot write {path} (permission denied); choose a writable results directory") from None
    except IsADirectoryError:
        raise SteeringError(f"{path} is a directory; remove it or choose another results directory") from None


def result_stem(result: EvalResult) -> str:
    """The file name of a result: model, task, method, split, then ``--limit`` and task options when set, so runs that
    differ in them (a 0-shot and a 5-shot MMLU, 50 vs all items) never overwrite each other."""
    parts = [_slug(result.model), result.task, result.method, result.split]
    limit = result.config.get("limit")
    if limit is not None:
        parts.append(f"limit{limit}")
    for key, value in sorted((result.config.get("task_options") or {}).items()):
        parts.append(_slug(f"{key}={value}"))
    return "__".join(parts)


def write_json(result: EvalResult, out_dir: str | Path) -> Path:
    """Write one result atomically (a rerun of the same cell replaces it)."""
    out = _out_dir(out_dir)
    path = out / f"{result_stem(result)}.json"
    return _write(path, json.dumps(result.to_dict(), indent=2) + "\n")


def read_results(out_dir: str | Path) -> list[EvalResult]:
    """Every result JSON written by ``tl-steer eval`` under a folder."""
    out = Path(out_dir)
    if not out.is_dir():
        raise SteeringError(f"results directory {out} does not exist")
    results = []
    for p in sorted(out.glob("*.json")):
        try:
            results.append(EvalResult.from_dict(json.loads(p.read_text())))
        except (KeyError, json.JSONDecodeError, TypeError):
            continue  # not a result file
    return results


def fmt(value: float, low: float, high: float, pct: bool = True) -> str:
    """A metric as ``value [low, high]`` in percent."""
    if pct:
        return f"{value * 100:.1f} [{low * 100:.1f}, {high * 100:.1f}]"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def markdown_table(results: Sequence[EvalResult], metrics: Sequence[str] | None = None) -> str:
    """One row per method, one column per (task, metric): ``value [95% CI]`` in percent, and a row of sample sizes.

    ``metrics`` (e.g. ``["truthfulqa_mc2:mc2", "bbq:bias_ambig"]``) picks the columns; by default each task's
    headline metric, plus ``mc1`` for TruthfulQA.
    """
    if not results:
        return "(no results)\n"
    if metrics is None:
        cols: list[tuple[str, str]] = []
        for r in results:
            extra = get_task(r.task).table_metrics if r.task in TASKS else ()
            wanted = [r.headline] + [m for m in extra if m != r.headline]
            for m in wanted:
                if (r.task, m) not in cols:
                    cols.append((r.task, m))
    else:
        cols = [tuple(c.split(":", 1)) for c in metrics]  # type: ignore[misc]
    methods: list[str] = []
    for r in results:
        if r.method not in methods:
            methods.append(r.method)
    by = {(r.method, r.task): r for r in results}
    head = "| method | " + " | ".join(f"{t} {m}" for t, m in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 1)]
    for meth in methods:
        cells = []
        for t, m in cols:
            r = by.get((meth, t))
            e = r.metrics.get(m) if r is not None else None
            cells.append(fmt(e.value, e.low, e.high, pct=not m.startswith("bias")) if e is not None else "–")
        lines.append(f"| {meth} | " + " | ".join(cells) + " |")
    ns = []
    for t, m in cols:
        sizes = sorted({r.metrics[m].n for r in results if r.task == t and m in r.metrics})
        ns.append("/".join(map(str, sizes)) or "–")
    lines.append("| n | " + " | ".join(ns) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(results: Sequence[EvalResult], path: str | Path, title: str = "Results") -> Path:
    """Write the results table as markdown."""
    path = Path(path)
    _out_dir(path.parent)
    note = ("Values in percent (bias scores ×1, in [-1, 1]) with 95% intervals: Wilson for accuracies, "
            "percentile bootstrap (1,000 resamples) for MC2 and bias scores. n = test items.\n\n")
    return _write(path, f"# {title}\n\n{note}{markdown_table(results)}")


def plot(results: Sequence[EvalResult], path: str | Path, metric: str | None = None) -> Path:
    """Grouped bar chart (tasks on x, one bar per method) with 95% interval error bars."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SteeringError("plotting needs matplotlib: pip install matplotlib (or the [dev] extra)") from None
    if not results:
        raise SteeringError("no results to plot")
    tasks = list(dict.fromkeys(r.task for r in results))
    methods = list(dict.fromkeys(r.method for r in results))
    methods.sort(key=lambda m: m not in ("none", "base"))  # the unsteered model first (stable for the rest)
    by = {(r.method, r.task): r for r in results}
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(2.6 + 1.6 * len(tasks), 3.6))
    for k, meth in enumerate(methods):
        xs, ys, lo, hi = [], [], [], []
        for i, t in enumerate(tasks):
            r = by.get((meth, t))
            if r is None:
                continue
            e = r.metrics[metric or r.headline]
            xs.append(i + (k - (len(methods) - 1) / 2) * width)
            ys.append(e.value)
            lo.append(e.value - e.low)
            hi.append(e.high - e.value)
        label = "base (unsteered)" if meth in ("none", "base") else meth
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=label, color="grey" if meth in ("none", "base") else None)
    labels = []
    for t in tasks:
        r = next(r for r in results if r.task == t)
        labels.append(f"{t}\n{metric or r.headline}, n={r.n}")
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel(f"{metric} (95% CI)" if metric else "each task's headline metric (95% CI)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside the bars, never on them
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _paired_p(cmp: Paired, a: Sequence[float], b: Sequence[float]) -> float:
    """McNemar's exact p of ``cmp`` for 0/1 values, else a paired t-test's."""
    if cmp.mcnemar_p is not None:
        return cmp.mcnemar_p
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    if all(d == diffs[0] for d in diffs):
        return 1.0 if diffs[0] == 0 else 0.0
    from scipy.stats import ttest_1samp

    return float(ttest_1samp(diffs, 0.0).pvalue)


def controls_table(results: Sequence[EvalResult], base: str = "none", alpha: float = 0.05, power: float = 0.8) -> str:
    """The results table with its controls: per task and condition, the headline metric, the sample's majority
    (best constant answer) baseline, balanced accuracy, the answer given most and how often, format compliance for
    exact-match tasks; for each condition but ``base`` the paired difference from ``base`` on the same items with its
    95% interval, the paired test's p (McNemar for 0/1 metrics, a paired t-test otherwise), that p Holm-adjusted
    across every comparison in the table, and the minimum detectable effect at this n (two-sided ``alpha``,
    ``power``, the observed standard deviation of the per-item differences). A difference counts only where the
    Holm-adjusted p is below ``alpha``."""
    from statistics import pstdev

    from .controls import holm, minimum_detectable_effect

    by = {(r.task, r.method): r for r in results}
    tasks = list(dict.fromkeys(r.task for r in results))
    rows, pvals = [], []
    for t in tasks:
        b = by.get((t, base))
        for r in (x for x in results if x.task == t):
            h = r.headline
            c = r.controls or {}
            maj = c.get("majority", {})
            answers = c.get("answers_acc_norm" if h == "acc_norm" else "answers_acc") or {}
            top = max(answers.items(), key=lambda kv: kv[1]) if answers else None
            row = {"task": t, "method": r.method, "n": r.n, "value": r.metrics[h], "metric": h,
                   "majority": maj.get("acc"), "balanced": c.get("balanced_acc_norm" if h == "acc_norm" else "balanced_acc"),
                   "top": top, "format": c.get("format_compliance"), "diff": None, "p": None, "mde": None}
            if b is not None and r is not b and h in r.per_item and h in b.per_item and r.item_ids == b.item_ids:
                cmp = b.compare(r, h)
                diffs = [y - x for x, y in zip(b.per_item[h], r.per_item[h], strict=True)]
                sd = pstdev(diffs)
                p0 = b.metrics[h].value
                row.update(diff=cmp, p=_paired_p(cmp, b.per_item[h], r.per_item[h]),
                           mde=minimum_detectable_effect(r.n, sd_diff=sd if sd > 0 else None,
                                                         p=min(max(p0, 0.0), 1.0), alpha=alpha, power=power))
                pvals.append(row["p"])
            rows.append(row)
    adjusted = iter(holm(pvals, alpha))
    pct = lambda x: "–" if x is None else f"{100 * x:.1f}"  # noqa: E731
    lines = ["| task | condition | n | metric | value [95% CI] | majority | balanced | most given | format | "
             f"Δ vs {base} [95% CI] | p | Holm p | MDE |", "|" + "---|" * 13]
    for row in rows:
        e = row["value"]
        holm_p = next(adjusted) if row["p"] is not None else None
        d = row["diff"]
        diff = "–" if d is None else f"{100 * d.diff:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}]"
        mark = " *" if holm_p is not None and holm_p < alpha else ""
        top = "–" if row["top"] is None else f"{row['top'][0]} {100 * row['top'][1]:.0f}%"
        p_raw = "–" if row["p"] is None else f"{row['p']:.3g}"
        p_holm = "–" if holm_p is None else f"{holm_p:.3g}{mark}"
        lines.append(
            f"| {row['task']} | {row['method']} | {row['n']} | {row['metric']} | {fmt(e.value, e.low, e.high)} | "
            f"{pct(row['majority'])} | {pct(row['balanced'])} | {top} | {pct(row['format'])} | {diff} | "
            f"{p_raw} | {p_holm} | {pct(row['mde'])} |")
    return "\n".join(lines) + "\n"
