"""SADI's Table 1 (zero-shot), Table 4 (ablation) and Fig. 4 (pairs curve), on SmolLM2-135M-Instruct.

Protocol (the reference code, github.com/weixuan-wang123/SADI, as it ran, except where it tuned on test):

* Tasks: COPA, StoryCloze, SST-2, BoolQ, MMLU and WinoGrande with the reference's prompts and one-word answers
  (``tl_steer.eval.reference_prompts``; NLI is absent from the data). Items come from each task's stored
  train/val/test split: contrast pairs from *train*, every hyperparameter chosen on *val*, numbers on *test*.
* Pairs: ``f"{prompt.strip()} {correct}"`` vs the same prompt with a wrong answer (``reference_pairs``).
* Conditions: base; SADI-HEAD / SADI-NEURON / SADI-HIDDEN (heads ``attn.hook_z``; neurons ranked on ``act(gate)``
  and edited on ``mlp.hook_post``; hidden units of ``hook_mlp_out``), each swept over the reference's grids of K and
  scale s = 1 + delta (heads K 1..10 x s 5..80, neurons K 3..500 x s 10..90, hiddens K 1..20 x s 5..80), edited at
  the last prompt token in the live mode; SADI-HEAD also in the reference's frozen-clean mode; CAA and ITI with
  their registry grids at their default positions (all tokens).
* Two metrics, each with its own val selection: ``em`` (the reference's: the greedy next token is the answer word)
  and ``acc`` (log-likelihood multiple choice among the options). Paired intervals (bootstrap, McNemar) against
  base and against the best baseline, per task and for the average over tasks (stratified paired bootstrap).
* Ablation (Table 4) on SADI-HEAD: a random mask of the same K (seeded), and a fixed vector: the masked mean
  activation difference added at the same heads, ``a + delta * (M ⊙ Δ)``, delta chosen on val.
* Pairs curve (Fig. 4): SADI-HEAD on one task against the number of contrast pairs, re-selected on val each time.

SADI's configurations edit only the last prompt token, so they are scored with
``tl_steer.eval.scoring.score_last_token`` (the prompt minus its last token runs once; exact, tested); CAA and ITI
edit every token and are scored with full forwards.

    python benchmarks/sadi_table.py                       # CPU defaults (~30-40 min on 2 cores)
    python benchmarks/sadi_table.py --n-val 200 --n-test 1000 --pairs 1000 --device cuda
    python benchmarks/sadi_table.py --quick               # tiny random model: a smoke test (what the test runs)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import string
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from tl_steer import registry, steer  # noqa: E402
from tl_steer.eval.metrics import paired, per_item  # noqa: E402
from tl_steer.eval.reference_prompts import SADI_TASKS, reference_pairs  # noqa: E402
from tl_steer.eval.scoring import score_items, score_last_token  # noqa: E402
from tl_steer.eval.splits import select  # noqa: E402
from tl_steer.eval.tasks import get_task, load_task  # noqa: E402
from tl_steer.functional.sadi import expand_head_mask, top_k_mask  # noqa: E402
from tl_steer.methods.sadi import Sadi  # noqa: E402
from tl_steer.methods.vector import SteeringVectors  # noqa: E402
from tl_steer.models import load_named as load_model  # noqa: E402
from tl_steer.registry import FitOptions, gated_act_fn  # noqa: E402
from tl_steer.sites import Site, hook_name  # noqa: E402

TASKS = [t[0] for t in SADI_TASKS]
#: the reference's grids (steering.py): K per variant, and the scale s (delta = s - 1)
REFERENCE_GRID = {
    "head": ([1, 2, 4, 6, 8, 10], list(range(5, 81, 5))),
    "neuron": ([3, 5, 10, 30, 50, 100, 200, 300, 400, 500], [10, 20, 30, 50, 70, 90]),
    "hidden": ([1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20], list(range(5, 81, 5))),
}
SITES = {"head": Site.Z, "neuron": Site.MLP_POST, "hidden": Site.MLP_OUT}
METRICS = ("em", "acc")
BASELINES = ("caa", "iti")


def _names(model: Any, site: Site) -> list[str]:
    n = model.cfg.n_layers
    if site is Site.MLP_POST and gated_act_fn(model):
        return [f"blocks.{i}.mlp.hook_pre" for i in range(n)]
    return [hook_name(i, site) for i in range(n)]


def _values(scores: list[Any], task: str, items: list[Any]) -> dict[str, list[float]]:
    return per_item(get_task(task), items, scores)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _best(cands: dict[str, Any], metric: str | None, order: list[str]) -> str:
    """The config with the best mean val ``metric`` (``None``: the value itself); ties go to the earliest in
    ``order`` (smallest K, then s)."""
    def value(c: str) -> float:
        return cands[c] if metric is None else cands[c][metric]
    return max(order, key=lambda c: (round(value(c), 9), -order.index(c)))


def score_configs(model: Any, items: list[Any], configs: dict[str, Any], batch_size: int,
                  clean_names: Any = ()) -> dict[str, list]:
    """Every configuration on one cached prefix (``score_last_token``), or with full forwards when the choices are not
    single tokens (the tiny model's character tokenizer); configurations that need clean values are then skipped."""
    try:
        return score_last_token(model, items, configs, batch_size, clean_names=clean_names)
    except Exception as e:  # noqa: BLE001
        if "one-token choices" not in str(e):
            raise
        return {k: score_items(model, items, v, batch_size) for k, v in configs.items() if not callable(v)}


def average_paired(a: dict[str, list[float]], b: dict[str, list[float]], n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean over tasks of ``mean(b) - mean(a)``, with a paired bootstrap that resamples items within each task."""
    g = torch.Generator().manual_seed(seed)
    diffs = {t: torch.tensor(b[t]) - torch.tensor(a[t]) for t in a}
    point = float(sum(d.mean() for d in diffs.values()) / len(diffs))
    draws = torch.zeros(n_boot)
    for d in diffs.values():
        idx = torch.randint(0, len(d), (n_boot, len(d)), generator=g)
        draws += d[idx].mean(1)
    draws = (draws / len(diffs)).sort().values
    return {"diff": point, "ci95": [float(draws[int(0.025 * (n_boot - 1))]), float(draws[int(0.975 * (n_boot - 1))])],
            "tasks": len(diffs)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--device", default=None)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS)
    ap.add_argument("--pairs", type=int, default=100, help="contrast pairs per task, from its train split")
    ap.add_argument("--n-val", type=int, default=40, help="val items per task (selection)")
    ap.add_argument("--n-test", type=int, default=80, help="test items per task (reported)")
    ap.add_argument("--curve-task", default="sadi_storycloze", choices=TASKS)
    ap.add_argument("--curve", type=int, nargs="*", default=[50, 100, 200, 400, 748],
                    help="numbers of pairs for the pairs curve (empty: skip it)")
    ap.add_argument("--triviaqa", action=argparse.BooleanOptionalAction, default=True,
                    help="also run TriviaQA exact match of greedy answers (the paper's generative task)")
    ap.add_argument("--triviaqa-only", action="store_true",
                    help="run only the TriviaQA stage and add it to an existing --out/sadi_table.json")
    ap.add_argument("--curve-only", action="store_true",
                    help="run only the pairs curve and add it to an existing --out/sadi_table.json")
    ap.add_argument("--qa-tokens", type=int, default=12, help="greedy tokens generated per TriviaQA answer")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="tiny random model and tiny sizes: a smoke test")
    ap.add_argument("--out", default="results/sadi_table")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    grid = REFERENCE_GRID
    if args.quick:
        args.model, args.tasks, args.pairs, args.n_val, args.n_test = "tiny-hf", ["sadi_copa", "sadi_sst2"], 6, 3, 4
        args.curve, args.curve_task, args.qa_tokens = [3, 6], "sadi_sst2", 3
        grid = {"head": ([1, 2], [5, 80]), "neuron": ([3], [10]), "hidden": ([1], [5])}
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, args.device)
    act = gated_act_fn(model)
    log: dict[str, Any] = {"args": vars(args), "grid": grid, "tasks": {}, "seconds": {}}
    print(f"model {args.model}: {model.cfg.n_layers} layers; tasks {args.tasks}")
    if args.curve_only or args.triviaqa_only:  # one stage, added to a finished run's output
        key, stage = ("pairs_curve", pairs_curve) if args.curve_only else ("triviaqa", triviaqa)
        path = out / "sadi_table.json"
        log = json.loads(path.read_text())
        t_stage = time.perf_counter()
        log[key] = stage(model, args, grid)
        log["seconds"][key] = round(time.perf_counter() - t_stage, 1)
        path.write_text(json.dumps(log, indent=1))
        md = render(log)
        (out / "sadi_table.md").write_text(md)
        print(md)
        try:
            plot(log, out)
        except ImportError as e:  # matplotlib is an optional extra
            print(f"no figures: {e}")
        return 0

    def evaluate(items: list[Any], configs: dict[str, Any], clean_names: list[str] | None = None) -> dict[str, list]:
        return score_configs(model, items, configs, args.batch_size, clean_names or ())

    def full(items: list[Any], configs: dict[str, Any]) -> dict[str, list]:
        return {k: score_items(model, items, v, args.batch_size) for k, v in configs.items()}

    def sadi_configs(fitted: dict[str, Sadi], variants: list[str], prefix: str = "") -> tuple[dict, list[str]]:
        configs, order = {}, []
        for v in variants:
            ks, ss = grid[v]
            for k in ks:
                if k > fitted[v].scores.numel():
                    continue
                m = fitted[v].with_k(k)
                for s in ss:
                    name = f"{prefix}{v}:k={k}:s={s}"
                    configs[name] = m.hooks(model, strength=s - 1)
                    order.append(name)
        return configs, order

    results: dict[str, dict[str, dict[str, list[float]]]] = {}  # task -> condition -> metric -> per-item
    for task in args.tasks:
        t_task = time.perf_counter()
        spec = get_task(task)
        items = load_task(task, args.data_dir)
        train = select(items, spec.pool, "train")
        val = select(items, spec.pool, "val", args.n_val)
        test = select(items, spec.pool, "test", args.n_test)
        pairs = reference_pairs(task, train, args.pairs, args.seed)
        names = {v: _names(model, s) for v, s in SITES.items()}
        opts = FitOptions(k=None, seed=args.seed, read_batch_size=8, progress=False)
        base_reads = sorted({n for m in BASELINES for n in registry.get(m).reads(model, opts)})
        needed = sorted({n for ns in names.values() for n in ns} | set(base_reads))
        pos, neg = registry.read_activations(model, [pairs], needed, opts)
        P, N = pos[pairs.attribute], neg[pairs.attribute]
        fitted = {v: Sadi.from_activations({n: P[n] for n in names[v]}, {n: N[n] for n in names[v]}, k=1,
                                           neuron_act=act if v == "neuron" else None) for v in SITES}
        ctx = registry.FitContext.of(model, [pairs])
        base_fits = {m: registry.fit_from_activations(m, model, pos, neg, opts, ctx) for m in BASELINES}
        # Table 4 material: the head-level mean difference (for the fixed vector) and a random-mask generator
        z_names = names["head"]
        diff_z = {n: (P[n].float().mean(0) - N[n].float().mean(0)) for n in z_names}
        d_head = model.cfg.d_head

        # ---- val: every SADI config on one cached prefix; CAA/ITI grids with full forwards
        configs, order = sadi_configs(fitted, ["head", "neuron", "hidden"])
        configs["base"] = []
        ref_configs = {}
        for k in grid["head"][0]:
            m = fitted["head"].with_k(k)
            for s in grid["head"][1]:
                ref_configs[f"head-ref:k={k}:s={s}"] = (lambda clean, m=m, s=s: m.hooks(model, mode="reference", clean=clean, strength=s - 1))
        val_scores = evaluate(val, {**configs, **ref_configs}, fitted["head"].clean_names())
        val_scores.update(full(val, {f"{m}:{s:g}": base_fits[m].hooks(model, strength=s)
                                     for m in BASELINES for s in registry.get(m).grid}))
        val_means = {c: {mt: _mean(_values(sc, task, val)[mt]) for mt in METRICS} for c, sc in val_scores.items()}
        chosen: dict[str, dict[str, str]] = {}
        groups = {"SADI-HEAD": [c for c in order if c.startswith("head:")],
                  "SADI-NEURON": [c for c in order if c.startswith("neuron:")],
                  "SADI-HIDDEN": [c for c in order if c.startswith("hidden:")],
                  "SADI-HEAD (reference mode)": [c for c in ref_configs if c in val_scores],
                  "CAA": [f"caa:{s:g}" for s in registry.get("caa").grid],
                  "ITI": [f"iti:{s:g}" for s in registry.get("iti").grid]}
        for label, cands in groups.items():
            if cands:
                chosen[label] = {mt: _best(val_means, mt, cands) for mt in METRICS}
        # ablations on SADI-HEAD at its em-chosen K: random heads (same K) and the fixed masked mean difference
        k_head = int(chosen["SADI-HEAD"]["em"].split(":")[1][2:])
        rng = random.Random(args.seed)
        n_el = fitted["head"].scores.numel()
        rand_mask = torch.zeros(n_el, dtype=torch.bool)
        rand_mask[rng.sample(range(n_el), k_head)] = True
        rand = Sadi(Site.Z, fitted["head"].layers, fitted["head"].scores, rand_mask.reshape(fitted["head"].scores.shape),
                    1.0, d_head)
        head_mask = top_k_mask(fitted["head"].scores, k_head)
        fixed_vecs = {hook_name(layer, Site.Z): expand_head_mask(head_mask[i], d_head).float() * diff_z[z_names[i]]
                      for i, layer in enumerate(fitted["head"].layers) if bool(head_mask[i].any())}
        fixed = SteeringVectors(fixed_vecs, 1.0, "sadi-fixed")
        abl = {}
        for s in grid["head"][1]:
            abl[f"random:s={s}"] = rand.hooks(model, strength=s - 1)
            abl[f"fixed:s={s}"] = fixed.hooks(model, positions="last_prompt", strength=s - 1)
        abl_scores = evaluate(val, abl)
        for c, sc in abl_scores.items():
            val_means[c] = {mt: _mean(_values(sc, task, val)[mt]) for mt in METRICS}
        for label, pre in (("random mask (Table 4)", "random:"), ("fixed vector (Table 4)", "fixed:")):
            cands = [c for c in abl if c.startswith(pre)]
            if cands and all(c in val_means for c in cands):
                chosen[label] = {mt: _best(val_means, mt, cands) for mt in METRICS}
        all_val = {"base": val_means["base"], **{f"{lab}[{mt}]": {**val_means[c], "config": c}
                                                 for lab, d in chosen.items() for mt, c in d.items()}}

        # ---- test: base + each chosen config (per metric)
        want_last = {"base": []}
        want_full = {}
        for d in chosen.values():
            for c in d.values():
                if c in configs:
                    want_last[c] = configs[c]
                elif c in ref_configs:
                    want_last[c] = ref_configs[c]
                elif c in abl:
                    want_last[c] = abl[c]
                else:
                    m, s = c.split(":")
                    want_full[c] = base_fits[m].hooks(model, strength=float(s))
        test_scores = evaluate(test, want_last, fitted["head"].clean_names())
        test_scores.update(full(test, want_full))
        per = {c: _values(sc, task, test) for c, sc in test_scores.items()}
        res: dict[str, dict[str, list[float]]] = {"base": {mt: per["base"][mt] for mt in METRICS}}
        for label, d in chosen.items():
            res[label] = {mt: per[c][mt] for mt, c in d.items() if c in per}
        results[task] = res
        log["tasks"][task] = {
            "n_train_pairs": len(pairs.positive), "n_val": len(val), "n_test": len(test),
            "chosen": chosen, "val": all_val,
            "test": {lab: {mt: _mean(v) for mt, v in r.items()} for lab, r in res.items()},
            "per_item": res, "item_ids": [it.meta.get("id") for it in test],
            "vs_base": {lab: {mt: paired(res["base"][mt], r[mt], mt).as_dict() for mt in r}
                        for lab, r in res.items() if lab != "base"},
            "val_grid": {c: v for c, v in val_means.items()},
        }
        log["seconds"][task] = round(time.perf_counter() - t_task, 1)
        print(f"{task}: n_test={len(test)} base em/acc {_mean(res['base']['em']):.3f}/{_mean(res['base']['acc']):.3f}; "
              + "; ".join(f"{lab} {_mean(r['em']):.3f}/{_mean(r['acc']):.3f}" for lab, r in res.items() if lab != "base")
              + f" ({log['seconds'][task]} s)", flush=True)

    # ---- averages over tasks, paired against base and against the better baseline
    labels = [lab for lab in results[args.tasks[0]] if all(lab in results[t] for t in args.tasks)]
    avg: dict[str, Any] = {}
    for mt in METRICS:
        base = {t: results[t]["base"][mt] for t in args.tasks}
        table = {lab: _mean([_mean(results[t][lab][mt]) for t in args.tasks]) for lab in labels}
        best_baseline = max(("CAA", "ITI"), key=lambda lab: table.get(lab, float("-inf")))
        avg[mt] = {"mean": table, "best_baseline": best_baseline, "vs_base": {}, "vs_best_baseline": {}}
        for lab in labels:
            if lab == "base":
                continue
            other = {t: results[t][lab][mt] for t in args.tasks}
            avg[mt]["vs_base"][lab] = average_paired(base, other)
            avg[mt]["vs_best_baseline"][lab] = average_paired({t: results[t][best_baseline][mt] for t in args.tasks}, other)
    log["average"] = avg

    # ---- pairs curve (Fig. 4): SADI-HEAD on one task vs the number of pairs
    if args.curve:
        log["pairs_curve"] = pairs_curve(model, args, grid)

    if args.triviaqa:
        t_qa = time.perf_counter()
        log["triviaqa"] = triviaqa(model, args, grid)
        log["seconds"]["triviaqa"] = round(time.perf_counter() - t_qa, 1)
        print(f"triviaqa EM: {log['triviaqa']['test']} ({log['seconds']['triviaqa']} s)", flush=True)
    log["seconds"]["total"] = round(time.perf_counter() - t0, 1)
    (out / "sadi_table.json").write_text(json.dumps(log, indent=1))
    md = render(log)
    (out / "sadi_table.md").write_text(md)
    print(md)
    try:
        plot(log, out)
    except ImportError as e:  # matplotlib is an optional extra
        print(f"no figures: {e}")
    return 0


def pairs_curve(model: Any, args: argparse.Namespace, grid: dict) -> dict[str, Any]:
    """SADI-HEAD on ``args.curve_task`` against the number of contrast pairs, K and s re-chosen on val each time.

    For StoryCloze the pairs come from its train split and then from the 2016 *val* release (other stories; the
    reference draws its pairs from that release), so the curve reaches 2,000 pairs."""
    task = args.curve_task
    spec = get_task(task)
    items = load_task(task, args.data_dir)
    train = select(items, spec.pool, "train")
    val = select(items, spec.pool, "val", args.n_val)
    test = select(items, spec.pool, "test", args.n_test)
    if task == "sadi_storycloze" and max(args.curve) > len(train):
        from tl_steer.eval.reference_prompts import load_storycloze

        seen = {it.meta["id"] for it in items}
        train = train + [it for it in load_storycloze(args.data_dir, release="val") if it.meta["id"] not in seen]
    counts = sorted({min(c, len(train)) for c in args.curve})
    pairs = reference_pairs(task, train, max(counts), args.seed)
    zn = _names(model, Site.Z)
    opts = FitOptions(k=None, seed=args.seed, read_batch_size=8, progress=False)
    pos, neg = registry.read_activations(model, [pairs], zn, opts)
    P, N = pos[pairs.attribute], neg[pairs.attribute]
    ks, ss = grid["head"]

    def score(split: list[Any], cfg: dict[str, Any]) -> dict[str, list]:
        return score_configs(model, split, cfg, args.batch_size)

    curve = []
    for c in counts:
        head = Sadi.from_activations({n: P[n][:c] for n in zn}, {n: N[n][:c] for n in zn}, k=1)
        cfg = {f"head:k={k}:s={s}": head.with_k(k).hooks(model, strength=s - 1) for k in ks for s in ss}
        order = list(cfg)
        vm = {k: {mt: _mean(_values(v, task, val)[mt]) for mt in METRICS} for k, v in score(val, cfg).items()}
        pick = {mt: _best(vm, mt, order) for mt in METRICS}
        tv = {p: _values(v, task, test) for p, v in score(test, {p: cfg[p] for p in set(pick.values())}).items()}
        curve.append({"pairs": c, "chosen": pick, "test": {mt: _mean(tv[pick[mt]][mt]) for mt in METRICS}})
        print(f"pairs curve {task}: {c} pairs -> {curve[-1]['test']} ({pick})", flush=True)
    base_t = score(test, {"base": []})["base"]
    return {"task": task, "n_test": len(test), "points": curve, "n_pairs_available": len(train),
            "base": {mt: _mean(_values(base_t, task, test)[mt]) for mt in METRICS}}


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_qa(text: str) -> str:
    """SQuAD-style answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(generated: str, aliases: list[str]) -> float:
    """1.0 when the generated answer (up to its first line break) equals one of the aliases, after normalisation."""
    answer = normalize_qa(generated.strip().split("\n")[0])
    return float(any(answer == normalize_qa(a) for a in aliases))


def triviaqa(model: Any, args: argparse.Namespace, grid: dict) -> dict[str, Any]:
    """TriviaQA exact match of greedy answers (the paper's generative evaluation): base, SADI-HEAD (K and s chosen on
    val by EM, last prompt token), CAA and ITI (registry grids, every token)."""
    spec = get_task("triviaqa")
    items = load_task("triviaqa", args.data_dir)
    train = select(items, spec.pool, "train")
    val = select(items, spec.pool, "val", args.n_val)
    test = select(items, spec.pool, "test", args.n_test)
    pairs = reference_pairs("triviaqa", train, args.pairs, args.seed)
    zn = _names(model, Site.Z)
    opts = FitOptions(k=None, seed=args.seed, read_batch_size=8, progress=False)
    reads = sorted(set(zn) | {n for m in BASELINES for n in registry.get(m).reads(model, opts)})
    pos, neg = registry.read_activations(model, [pairs], reads, opts)
    P, N = pos[pairs.attribute], neg[pairs.attribute]
    head = Sadi.from_activations({n: P[n] for n in zn}, {n: N[n] for n in zn}, k=1)
    ctx = registry.FitContext.of(model, [pairs])  # one context for every baseline (the neuron_act included)
    base_fits = {m: registry.fit_from_activations(m, model, pos, neg, opts, ctx) for m in BASELINES}

    def em(split_items: list[Any], hooks: list) -> list[float]:
        out = []
        for k in range(0, len(split_items), args.batch_size):
            chunk = split_items[k: k + args.batch_size]
            prompts = [it.prompt for it in chunk]
            with steer(model, hooks), torch.no_grad():
                texts = model.generate(prompts if len(prompts) > 1 else prompts[0], max_new_tokens=args.qa_tokens,
                                       do_sample=False, verbose=False, padding_side="left")
            texts = [texts] if isinstance(texts, str) else texts
            for it, text in zip(chunk, texts, strict=True):
                gen = text[len(it.prompt):] if text.startswith(it.prompt) else text
                aliases = [c.strip() for c, lab in zip(it.choices, it.labels, strict=True) if lab]
                out.append(exact_match(gen, aliases))
        return out

    ks, ss = grid["head"]
    ks, ss = ks[::2] + ks[-1:], [s for s in ss if s in (5, 10, 20, 40, 80)] or ss[:2]
    cands = {f"head:k={k}:s={s}": head.with_k(k).hooks(model, strength=s - 1) for k in ks for s in ss}
    cands.update({f"{m}:{s:g}": base_fits[m].hooks(model, strength=s) for m in BASELINES for s in registry.get(m).grid})
    val_em = {"base": _mean(em(val, []))}
    val_em.update({c: _mean(em(val, h)) for c, h in cands.items()})
    chosen = {"SADI-HEAD": _best(val_em, None, [c for c in cands if c.startswith("head:")]),
              "CAA": _best(val_em, None, [c for c in cands if c.startswith("caa:")]),
              "ITI": _best(val_em, None, [c for c in cands if c.startswith("iti:")])}
    res = {"base": em(test, [])}
    res.update({lab: em(test, cands[c]) for lab, c in chosen.items()})
    return {"n_train_pairs": len(pairs.positive), "n_val": len(val), "n_test": len(test), "val": val_em,
            "chosen": chosen, "test": {lab: _mean(v) for lab, v in res.items()}, "per_item": res,
            "vs_base": {lab: paired(res["base"], v, "em").as_dict() for lab, v in res.items() if lab != "base"},
            "vs": {f"SADI-HEAD - {b}": paired(res[b], res["SADI-HEAD"], "em").as_dict() for b in ("CAA", "ITI")}}


def render(log: dict[str, Any]) -> str:
    tasks = list(log["tasks"])
    labels = list(log["average"]["em"]["mean"])
    lines = []
    for mt in METRICS:
        lines.append(f"\n**{mt}** (test; n per task: " + ", ".join(f"{t[5:]} {log['tasks'][t]['n_test']}" for t in tasks) + ")\n")
        lines.append("| condition | " + " | ".join(t[5:] for t in tasks) + " | average | Δ vs base [95% CI] | Δ vs best baseline [95% CI] |")
        lines.append("|---" * (len(tasks) + 4) + "|")
        a = log["average"][mt]
        for lab in labels:
            cells = []
            for t in tasks:
                v = log["tasks"][t]["test"][lab][mt]
                cmp = log["tasks"][t]["vs_base"].get(lab, {}).get(mt)
                star = "*" if cmp and cmp["mcnemar_p"] is not None and cmp["mcnemar_p"] < 0.05 else ""
                cells.append(f"{100 * v:.1f}{star}")
            vb = a["vs_base"].get(lab)
            vbb = a["vs_best_baseline"].get(lab)

            def fmt(d: dict) -> str:
                return f"{100 * d['diff']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]"

            lines.append(f"| {lab} | " + " | ".join(cells) + f" | {100 * a['mean'][lab]:.1f} | "
                         + (fmt(vb) if vb else "") + " | " + (fmt(vbb) if vbb and lab != a["best_baseline"] else "") + " |")
        lines.append(f"\nBest baseline on the {mt} average: {a['best_baseline']}. * = McNemar p < 0.05 against base.")
    if "pairs_curve" in log:
        pc = log["pairs_curve"]
        lines.append(f"\n**Pairs curve** ({pc['task'][5:]}, SADI-HEAD, test n={pc['n_test']}; base em "
                     f"{100 * pc['base']['em']:.1f}, acc {100 * pc['base']['acc']:.1f})\n")
        lines.append("| pairs | em | acc | chosen (em) |")
        lines.append("|---|---|---|---|")
        for p in pc["points"]:
            lines.append(f"| {p['pairs']} | {100 * p['test']['em']:.1f} | {100 * p['test']['acc']:.1f} | {p['chosen']['em']} |")
    if "triviaqa" in log:
        q = log["triviaqa"]
        lines.append(f"\n**TriviaQA exact match** (greedy answers; test n={q['n_test']}; chosen on val: "
                     + ", ".join(f"{k} {v}" for k, v in q["chosen"].items()) + ")\n")
        lines.append("| condition | EM | Δ vs base [95% CI], McNemar p |")
        lines.append("|---|---|---|")
        for lab, v in q["test"].items():
            d = q["vs_base"].get(lab)
            cmp = f"{100 * d['diff']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}], p {d['mcnemar_p']:.2g}" if d else ""
            lines.append(f"| {lab} | {100 * v:.1f} | {cmp} |")
    return "\n".join(lines) + "\n"


def plot(log: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3 if "pairs_curve" in log else 2, figsize=(15, 4.2))
    labels = list(log["average"]["em"]["mean"])
    for ax, mt in zip(axes, METRICS, strict=False):
        a = log["average"][mt]
        vals = [100 * a["mean"][lab] for lab in labels]
        errs = [[0] * len(labels), [0] * len(labels)]
        for i, lab in enumerate(labels):
            if lab in a["vs_base"]:
                d = a["vs_base"][lab]
                errs[0][i] = 100 * (d["diff"] - d["ci95"][0])
                errs[1][i] = 100 * (d["ci95"][1] - d["diff"])
        ax.barh(range(len(labels)), vals, xerr=errs, color=["grey"] + ["C0"] * (len(labels) - 1))
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(f"average {mt} over {len(log['tasks'])} tasks (%); bars: 95% CI of Δ vs base")
    if "pairs_curve" in log:
        pc = log["pairs_curve"]
        ax = axes[2]
        xs = [p["pairs"] for p in pc["points"]]
        for mt in METRICS:
            ax.plot(xs, [100 * p["test"][mt] for p in pc["points"]], marker="o", label=f"SADI-HEAD {mt}")
            ax.axhline(100 * pc["base"][mt], ls="--", lw=1, color="C0" if mt == "em" else "C1", label=f"base {mt}")
        ax.set_xscale("log")
        ax.set_xlabel(f"contrast pairs ({pc['task'][5:]}, test n={pc['n_test']})")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "sadi_table.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
