"""Steering open-ended generation, scored outside the model (issue 22, item 4).

Two attributes, each measured by something other than the steered model:

* **sentiment**: VADER's compound score of the continuation (the ``vaderSentiment`` package ships its lexicon;
  -1 very negative .. +1 very positive); steered towards positive.
* **wedding** (ActAdd's topic example): the share of continuations that use a wedding word (``KEYWORDS``).

Fluency is the perplexity of each continuation under the *unsteered* model, and distinct-1/2 over a condition's
continuations. Every method is fitted on the same contrast texts per attribute (sentiment: SST-2 positive vs
negative sentences; wedding: sentences about a wedding vs the same sentences about something else), at the middle
layer's residual stream, and applied at every token (``positions="all"``, the same for every method). MAT-Steer is
fitted once on both attributes and steers both (its own setting: each gate decides where); "caa_sum" adds the two
single-attribute CAA vectors; both are compared with each CAA vector alone.

Each method gets the same number of strengths (its registered grid, ``len(GRID)`` points; extended by doubling while
the attribute still rises, up to ``MAX_DOUBLINGS``). Generations sample (top-p 0.9, temperature 1) 24 new tokens for
each prompt, with ``--seeds`` sampling seeds; every condition sees the same prompts and seeds, so differences are
paired per (prompt, seed). ``PROMPTS`` are neutral; ``POSITIVE_PROMPTS`` / ``WEDDING_PROMPTS`` already have the
attribute (what does steering do to inputs that need none?).

Rows (one per model, method, attribute steered, strength, seed, prompt set) go to ``<out>/rows.jsonl`` as they are
made; a rerun resumes. ``<out>/steer_generation.md`` has the curves' table, the interference matrix (steering
attribute A moves attribute B by how much) and paired 95% intervals vs the unsteered model, Holm-adjusted per model;
``<out>/generation_<model>.png`` the strength curves (attribute Δ against perplexity).

    python benchmarks/steer_generation.py --models smollm2 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tl_steer as ts  # noqa: E402
from tl_steer import registry  # noqa: E402
from tl_steer.eval.metrics import paired  # noqa: E402
from tl_steer.eval.sources import sst2_rows  # noqa: E402
from tl_steer.models import load_named  # noqa: E402
from tl_steer.sweep import continuation_logprob  # noqa: E402

MODELS = {"smollm2": "smollm2-135m-instruct", "gemma3": "gemma3-270m", "tiny": "tiny-hf"}
METHODS = ("caa", "pca", "iti", "sadi", "mat_steer", "caa_sum")
GRID_POINTS = 4
MAX_DOUBLINGS = 2
NEW_TOKENS = 24

KEYWORDS = ("wedding", "weddings", "bride", "brides", "groom", "married", "marry", "marriage", "ceremony", "vows",
            "honeymoon", "bridesmaid", "engaged", "engagement")

PROMPTS = ("I went out yesterday and", "The first thing I noticed was", "My neighbour told me that", "Last weekend we",
           "The meeting this morning", "When I opened the door,", "The best way to spend a Sunday is",
           "Our trip to the coast", "The new restaurant in town", "I have been thinking about",
           "At the end of the day,", "The letter said that", "My brother called to say", "This year the garden",
           "The train was late, so", "After dinner we decided to")
POSITIVE_PROMPTS = ("I love this place, it is", "What a wonderful day, we", "The food was delicious and",
                    "She was thrilled because")
WEDDING_PROMPTS = ("At the wedding, the bride", "The groom said his vows and", "After the ceremony the guests",
                   "Planning our wedding was")

WEDDING_POS = ("We went to my cousin's wedding", "The bride wore a long white dress", "The groom cried during the vows",
               "They got married in a small chapel", "The wedding ceremony was by the lake",
               "Her bridesmaids carried roses", "We danced all night at the wedding", "He proposed and they got engaged",
               "The wedding cake had five tiers", "They left for their honeymoon", "The priest married them at noon",
               "Guests threw rice at the bride and groom")
WEDDING_NEG = ("We went to my cousin's office", "The teacher wore a long white coat", "The driver cried during the film",
               "They got lunch in a small cafe", "The football match was by the lake",
               "Her neighbours carried boxes", "We worked all night at the office", "He studied and they got tired",
               "The birthday cake had five candles", "They left for their meeting", "The doctor saw them at noon",
               "Kids threw stones at the river and pond")


def contrast_sets(n: int, seed: int) -> dict[str, ts.ContrastSet]:
    rows = sst2_rows()
    rng = random.Random(seed)
    pos = [r["text"].strip() for r in rows if r["label"] == "1"]
    neg = [r["text"].strip() for r in rows if r["label"] == "0"]
    rng.shuffle(pos)
    rng.shuffle(neg)
    return {"sentiment": ts.ContrastSet("sentiment", tuple(pos[:n]), tuple(neg[:n])),
            "wedding": ts.ContrastSet("wedding", WEDDING_POS, WEDDING_NEG)}


_VADER = None


def sentiment(text: str) -> float:
    global _VADER
    if _VADER is None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        _VADER = SentimentIntensityAnalyzer()
    return float(_VADER.polarity_scores(text)["compound"])


def wedding(text: str) -> float:
    words = set(re.findall(r"[a-z]+", text.lower()))
    return float(bool(words & set(KEYWORDS)))


SCORERS = {"sentiment": sentiment, "wedding": wedding}


def distinct(texts: list[str], n: int) -> float:
    grams = [tuple(w[i:i + n]) for w in (t.split() for t in texts) for i in range(max(len(w) - n + 1, 0))]
    return len(set(grams)) / len(grams) if grams else 0.0


def fit_all(model, sets: dict[str, ts.ContrastSet], seed: int, methods) -> dict[tuple[str, str], object]:
    """``{(method, attribute): fitted}`` for the methods asked for; MAT-Steer once on both attributes."""
    layer = model.cfg.n_layers // 2
    out: dict[tuple[str, str], object] = {}
    singles = {"caa" if m == "caa_sum" else m for m in methods} - {"mat_steer"}
    for attr, cs in sets.items():
        for m in sorted(singles):
            out[(m, attr)] = ts.fit(m, model, [cs], ts.FitOptions(layer=layer, seed=seed, progress=False,
                                                                  **({"site": "resid_pre"} if m == "sadi" else {})))
    if "mat_steer" in methods:
        mat = ts.fit("mat_steer", model, list(sets.values()), ts.FitOptions(layer=layer, seed=seed, progress=False))
        for attr in sets:
            out[("mat_steer", attr)] = mat
    return out


#: methods that steer both attributes at once (MAT-Steer's own setting; CAA's two vectors added)
JOINT = ("mat_steer", "caa_sum")


def hooks_for(model, fitted, method: str, attr: str, strength: float) -> list:
    """Hooks of ``method`` steering ``attr`` (``"both"`` for the joint methods) at ``strength``."""
    if method == "caa_sum":
        return [h for a in ("sentiment", "wedding")
                for h in fitted[("caa", a)].hooks(model, positions="all", strength=strength)]
    return fitted[(method, attr if attr != "both" else "sentiment")].hooks(model, positions="all", strength=strength)


def grid(method: str) -> list[float]:
    base = registry.get("caa" if method == "caa_sum" else method).grid
    return [float(x) for x in base[:GRID_POINTS]]


@torch.no_grad()
def generate(model, prompts: tuple[str, ...], hooks: list, seed: int) -> list[str]:
    torch.manual_seed(seed)
    with ts.steer(model, hooks):
        out = model.generate(list(prompts), max_new_tokens=NEW_TOKENS, do_sample=True, top_p=0.9, temperature=1.0,
                             stop_at_eos=False, verbose=False, padding_side="left", return_type="str")
    return [o[len(p):] if o.startswith(p) else o for o, p in zip(out, prompts, strict=True)]


@torch.no_grad()
def perplexity(model, prompts: tuple[str, ...], continuations: list[str]) -> list[float]:
    ok = [(p, c) for p, c in zip(prompts, continuations, strict=True) if c.strip()]
    if not ok:
        return [float("nan")] * len(prompts)
    lp = continuation_logprob(model, [p for p, _ in ok], [c for _, c in ok])
    n = [max(len(model.to_tokens(c, prepend_bos=False)[0]), 1) for _, c in ok]
    vals = iter(math.exp(-float(v) / k) for v, k in zip(lp, n, strict=True))
    return [next(vals) if c.strip() else float("nan") for c in continuations]


def measure(model, prompts: tuple[str, ...], hooks: list, seed: int) -> dict:
    conts = generate(model, prompts, hooks, seed)
    return {"continuations": conts, **{a: [f(c) for c in conts] for a, f in SCORERS.items()},
            "ppl": perplexity(model, prompts, conts), "distinct1": distinct(conts, 1), "distinct2": distinct(conts, 2)}


def paired_ci(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """``mean(b - a)`` with its paired-bootstrap 95% interval (``tl_steer.eval.metrics.paired``), NaN pairs left out."""
    keep = [(x, y) for x, y in zip(a, b, strict=True) if not (math.isnan(x) or math.isnan(y))]
    if not keep:
        return float("nan"), float("nan"), float("nan")
    cmp = paired([x for x, _ in keep], [y for _, y in keep])
    return cmp.diff, cmp.low, cmp.high


def paired_test(a: list[float], b: list[float]) -> tuple[float | None, float | None]:
    """``(p, sd of the differences)``: a paired t-test of ``b`` vs ``a`` over the same (seed, prompt) pairs. Where
    every difference is the same nonzero value (every continuation gained the attribute: a t-test is undefined
    there) the exact two-sided sign test, ``2 * 0.5 ** n``, with no sd. ``(None, None)`` when every difference is
    zero or there are fewer than 2 pairs."""
    from scipy.stats import ttest_rel

    keep = [(x, y) for x, y in zip(a, b, strict=True) if not (math.isnan(x) or math.isnan(y))]
    d = [y - x for x, y in keep]
    if len(d) < 2 or all(v == 0 for v in d):
        return None, None
    if all(v == d[0] for v in d):
        return min(1.0, 2 * 0.5 ** len(d)), None
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (len(d) - 1))
    return float(ttest_rel([y for _, y in keep], [x for x, _ in keep]).pvalue), sd


def report(rows: list[dict]) -> str:
    """The curves' tables, one per model: per (method, attribute steered, strength), the paired change of each
    attribute (a row steering one attribute and its other column are the interference matrix), fluency, and the
    change on prompts that already have the attribute. Every Δ gets a paired t-test vs that model's unsteered run; the
    p-values are Holm-adjusted across that model's table (one family per model: adding a model never changes
    another's marks), and a Δ marked ✓ survives (adjusted p < 0.05)."""
    return "\n".join(_report_model([r for r in rows if r["model"] == m]) for m in sorted({r["model"] for r in rows}))


def _report_model(rows: list[dict]) -> str:
    """``report()`` for the rows of one model."""
    from tl_steer.eval.controls import holm, minimum_detectable_effect

    def keyed(model, method, attr, strength, prompt_set, key):
        """``{(seed, prompt index): value}``: pairs are matched on these (a seed not run yet pairs with nothing)."""
        return {(r["seed"], i): v for r in rows if (r["model"], r["method"], r["attribute"], r["strength"],
                                                    r["prompts"]) == (model, method, attr, strength, prompt_set)
                for i, v in enumerate(r[key])}

    def pooled(model, method, attr, strength, prompt_set, key):
        return list(keyed(model, method, attr, strength, prompt_set, key).values())

    def pair(base_args, args):
        a, b = keyed(*base_args), keyed(*args)
        common = sorted(set(a) & set(b))
        return [a[k] for k in common], [b[k] for k in common]

    table: list[dict] = []
    tests: list[float | None] = []
    for model in sorted({r["model"] for r in rows}):
        base = {k: pooled(model, "none", "none", 0.0, "neutral", k) for k in ("ppl",)}
        for method in [m for m in METHODS if any(r["method"] == m for r in rows)]:
            for attr in (("both",) if method in JOINT else ("sentiment", "wedding")):
                strengths = sorted({r["strength"] for r in rows if (r["model"], r["method"], r["attribute"]) ==
                                    (model, method, attr) and r["prompts"] == "neutral"})
                for s in strengths:
                    row = {"model": model, "method": method, "attr": attr, "s": s, "cells": []}
                    for k in ("sentiment", "wedding"):
                        a, b = pair((model, "none", "none", 0.0, "neutral", k), (model, method, attr, s, "neutral", k))
                        p, sd = paired_test(a, b)
                        row["cells"].append((*paired_ci(a, b), len(tests), len(a), sd))
                        tests.append(p)
                    ppl = [x for x in pooled(model, method, attr, s, "neutral", "ppl") if not math.isnan(x)]
                    bppl = [x for x in base["ppl"] if not math.isnan(x)]
                    row["ppl"] = (sorted(ppl)[len(ppl) // 2] if ppl else float("nan"),
                                  sorted(bppl)[len(bppl) // 2] if bppl else float("nan"))
                    d2 = [r["distinct2"] for r in rows if (r["model"], r["method"], r["attribute"], r["strength"],
                                                           r["prompts"]) == (model, method, attr, s, "neutral")]
                    row["d2"] = sum(d2) / max(len(d2), 1)
                    owns = []
                    for a_ in (("sentiment", "wedding") if attr == "both" else (attr,)):
                        own_base, own = pair((model, "none", "none", 0.0, a_, a_), (model, method, attr, s, a_, a_))
                        owns.append(f"{a_} {paired_ci(own_base, own)[0]:+.2f}" if own else f"{a_} –")
                    row["owns"] = owns
                    table.append(row)
    adjusted = holm(tests)
    lines = ["| model | method | steered | strength | sentiment Δ [95% CI] | wedding Δ [95% CI] | ppl (base) | "
             "distinct-2 | on prompts that already have it: Δ |", "|" + "---|" * 9]
    mde: dict[str, list[float]] = {"sentiment": [], "wedding": []}
    n_pairs = 0
    for row in table:
        cells = []
        for k, (d, lo, hi, t, n, sd) in zip(("sentiment", "wedding"), row["cells"], strict=True):
            mark = " ✓" if adjusted[t] is not None and adjusted[t] < 0.05 else ""
            cells.append(f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]{mark}")
            if sd is not None and n >= 2:
                mde[k].append(minimum_detectable_effect(n, sd_diff=sd))
            n_pairs = max(n_pairs, n)
        lines.append(f"| {row['model']} | {row['method']} | {row['attr']} | {row['s']:g} | {cells[0]} | {cells[1]} | "
                     f"{row['ppl'][0]:.1f} ({row['ppl'][1]:.1f}) | {row['d2']:.2f} | {', '.join(row['owns'])} |")
    n_tests = sum(p is not None for p in tests)
    foot = (f"\n✓: the paired test vs the unsteered model (a t-test; the exact sign test where every pair moved by the "
            f"same amount) survives Holm's correction across all {n_tests} tests of this model's table (adjusted "
            f"p < 0.05). Pairs: (seed, prompt), up to {n_pairs} per cell. ")
    for k, v in mde.items():
        if v:
            foot += (f"Minimum detectable {k} Δ at that n (80% power, 5% two-sided, before Holm): median "
                     f"{sorted(v)[len(v) // 2]:.2f}. ")
    return "\n".join(lines) + "\n" + foot + "\n"


NAMES = {"smollm2": "SmolLM2-135M", "gemma3": "Gemma-3-270M", "tiny": "tiny"}


def plot(rows: list[dict], model: str, path: Path) -> Path:
    """The strength curves of one model: per attribute steered, each method's mean change of that attribute vs the
    unsteered model (paired on (seed, prompt)) against the median perplexity of its continuations under the unsteered
    model, one point per strength (labelled). The joint methods appear in both panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def values(method, attr, s, key):
        return {(r["seed"], i): v for r in rows if (r["model"], r["method"], r["attribute"], r["strength"], r["prompts"])
                == (model, method, attr, s, "neutral") for i, v in enumerate(r[key])}

    base = {k: values("none", "none", 0.0, k) for k in ("sentiment", "wedding")}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, attr in zip(axes, ("sentiment", "wedding"), strict=True):
        for method in [m for m in METHODS if any(r["model"] == model and r["method"] == m for r in rows)]:
            steered = "both" if method in JOINT else attr
            strengths = sorted({r["strength"] for r in rows if (r["model"], r["method"], r["attribute"], r["prompts"])
                                == (model, method, steered, "neutral")})
            xs, ys, labels = [], [], []
            for s in strengths:
                cur = values(method, steered, s, attr)
                common = sorted(set(cur) & set(base[attr]))
                ppl = sorted(x for x in values(method, steered, s, "ppl").values() if not math.isnan(x))
                if not common or not ppl:
                    continue
                xs.append(ppl[len(ppl) // 2])
                ys.append(sum(cur[k] - base[attr][k] for k in common) / len(common))
                labels.append(s)
            ax.plot(xs, ys, "o-", label=f"{method} ({steered})")
            for x, y, s in zip(xs, ys, labels, strict=True):
                ax.annotate(f"{s:g}", (x, y), fontsize=7, xytext=(2, 2), textcoords="offset points")
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.set_xscale("log")
        ax.set_xlabel("perplexity of the continuation under the unsteered model (median)")
        ax.set_ylabel(f"{attr} Δ vs unsteered")
        ax.set_title(f"{NAMES.get(model, model)}: steering {attr}")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["smollm2"], choices=list(MODELS))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--n-fit", type=int, default=64)
    ap.add_argument("--out", default="results/steer_generation", type=Path)
    ap.add_argument("--quick", action="store_true", help="2 prompts per set, 2 strengths: a smoke test")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    done_file = args.out / "rows.jsonl"
    rows = [json.loads(x) for x in done_file.read_text().splitlines()] if done_file.exists() else []
    done = {(r["model"], r["method"], r["attribute"], r["strength"], r["seed"], r["prompts"]) for r in rows}
    sets_of_prompts = {"neutral": PROMPTS, "sentiment": POSITIVE_PROMPTS, "wedding": WEDDING_PROMPTS}
    if args.quick:
        sets_of_prompts = {k: v[:2] for k, v in sets_of_prompts.items()}

    def record(row: dict) -> None:
        rows.append(row)
        done.add((row["model"], row["method"], row["attribute"], row["strength"], row["seed"], row["prompts"]))
        with done_file.open("a") as f:
            f.write(json.dumps(row) + "\n")

    for name in args.models:
        model = load_named(MODELS[name], device="cpu")
        t0 = time.perf_counter()
        fitted = fit_all(model, contrast_sets(args.n_fit, 0), 0, args.methods)
        print(f"[generation] {name}: fitted in {time.perf_counter() - t0:.0f} s", flush=True)
        for seed in args.seeds:
            for pset, prompts in sets_of_prompts.items():
                key = (name, "none", "none", 0.0, seed, pset)
                if key not in done:
                    record({"model": name, "method": "none", "attribute": "none", "strength": 0.0, "seed": seed,
                            "prompts": pset, **measure(model, prompts, [], seed)})
        for method in args.methods:
            for attr in (("both",) if method in JOINT else ("sentiment", "wedding")):
                strengths = grid(method)[: 2 if args.quick else None]
                k = 0
                while k < len(strengths):
                    s = strengths[k]
                    for seed in args.seeds:
                        for pset in (("neutral", "sentiment", "wedding") if attr == "both" else ("neutral", attr)):
                            key = (name, method, attr, s, seed, pset)
                            if key in done:
                                continue
                            t1 = time.perf_counter()
                            row = measure(model, sets_of_prompts[pset], hooks_for(model, fitted, method, attr, s), seed)
                            record({"model": name, "method": method, "attribute": attr, "strength": s, "seed": seed,
                                    "prompts": pset, **row})
                            print(f"[generation] {name} {method} {attr} s={s:g} seed={seed} {pset}: sentiment "
                                  f"{sum(row['sentiment']) / len(row['sentiment']):+.2f} wedding "
                                  f"{sum(row['wedding']) / len(row['wedding']):.2f} in {time.perf_counter() - t1:.0f} s",
                                  flush=True)
                    # extend the grid by doubling while the attribute still rises (equal budgets: same rule for all)
                    if (k == len(strengths) - 1 and not args.quick
                            and len(strengths) < GRID_POINTS + MAX_DOUBLINGS and k >= 1):
                        watch = ("sentiment", "wedding") if attr == "both" else (attr,)
                        cur = [x for r in rows if (r["model"], r["method"], r["attribute"], r["strength"], r["prompts"])
                               == (name, method, attr, s, "neutral") for a in watch for x in r[a]]
                        prev = [x for r in rows if (r["model"], r["method"], r["attribute"], r["strength"], r["prompts"])
                                == (name, method, attr, strengths[k - 1], "neutral") for a in watch for x in r[a]]
                        if sum(cur) / len(cur) > sum(prev) / len(prev):
                            strengths.append(2 * s)
                    k += 1
        del model
    md = report(rows)
    (args.out / "steer_generation.md").write_text(md)
    for name in sorted({r["model"] for r in rows}):
        plot(rows, name, args.out / f"generation_{name}.png")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
