"""What steering costs: every registered method's hooks against the unsteered bridge and a plain Hugging Face model.

Measured in one run, in interleaved rounds (each round runs every condition once, so drift hits all alike), and
printed as min / median seconds and **ratios of medians** (never absolute targets):

* forward, batch 8 x 64 tokens: unsteered bridge, bridge + each method's hooks, plain HF (the same weights);
* KV-cached greedy generation, batch 1 and batch 8 (left-padded), per decode token: the same conditions, plus each
  method on the bridge-free fast path (``tl_steer.fast.hf_steer``: the same hooks on the plain HF model);
* ``collect`` against a hand-written ``run_with_cache(names_filter=..., stop_at_layer=...)`` loop;
* MAT-Steer fit time at N = 1k / 4k / 16k token activations per side, T = 3 attributes (synthetic activations);
* evaluation throughput (items/s) of the harness's scorer, and a strength sweep of SADI (8 strengths, last prompt
  token): 8 full forwards per item vs one cached prefix (``score_last_token``);
* multiple choice on a long shared prompt with 6 choices: every choice's full sequence (``score_items``) vs the
  prompt run once and the choices scored on its KV cache (``score_items_shared``);
* per-row strengths: an 8-point strength sweep of a log-prob margin as one batch (a ``(batch,)`` strength) vs 8
  passes (``tl_steer.sweep.margin_sweep``), for CAA and SADI;
* every architecture family with a site table (``tl_steer.arch``), on a tiny random model: the steered fast path
  against plain HF and the steered bridge against the unsteered one.

    python benchmarks/bench_overhead.py                   # SmolLM2 on CPU, ~5-10 min on 2 cores
    python benchmarks/bench_overhead.py --quick           # the tiny HF model, seconds (what the test runs)
    python benchmarks/bench_overhead.py --device cuda     # on a GPU the per-hook Python and launch costs show
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from tl_steer import registry, steer  # noqa: E402
from tl_steer.arch import ARCH_SITES  # noqa: E402, F401 - the families the per-architecture section covers
from tl_steer.collect import collect  # noqa: E402
from tl_steer.fast import hf_steer  # noqa: E402
from tl_steer.models import load_named as load_model  # noqa: E402
from tl_steer.pairs import ContrastSet  # noqa: E402
from tl_steer.registry import FitOptions  # noqa: E402
from tl_steer.sites import hook_name  # noqa: E402

PAIRS = ContrastSet(
    "sentiment",
    ("I love this, it is wonderful", "What a delightful, happy day", "The film was moving and kind",
     "She was thrilled and grateful", "Everything is going well", "A lovely, warm evening"),
    ("I hate this, it is awful", "What a miserable, gloomy day", "The film was cruel and boring",
     "She was furious and bitter", "Everything is going wrong", "A bleak, cold evening"),
)
PROMPTS = ["The movie was", "My weekend at the beach was really", "The new restaurant downtown is",
           "I think that", "Tell me about your day, please:", "Honestly, the service", "Our trip to the mountains",
           "The weather today"]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved(conditions: dict[str, Callable[[], Any]], rounds: int, device: str) -> dict[str, dict[str, float]]:
    """``{name: {"min": s, "median": s}}``: each round runs every condition once, in a rotating order."""
    names = list(conditions)
    times: dict[str, list[float]] = {n: [] for n in names}
    for fn in conditions.values():  # warm-up
        fn()
    for r in range(rounds):
        for n in names[r % len(names):] + names[: r % len(names)]:
            _sync(device)
            t0 = time.perf_counter()
            conditions[n]()
            _sync(device)
            times[n].append(time.perf_counter() - t0)
    return {n: {"min": min(v), "median": statistics.median(v)} for n, v in times.items()}


def ratios(res: dict[str, dict[str, float]], base: str) -> dict[str, float]:
    return {n: v["median"] / res[base]["median"] for n, v in res.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--fit-sizes", type=int, nargs="*", default=[1000, 4000, 16000])
    ap.add_argument("--quick", action="store_true", help="tiny HF model, 2 rounds: a smoke test")
    ap.add_argument("--out", default="results/bench_overhead.json")
    ap.add_argument("--only-export", action="store_true",
                    help="only the exported-checkpoint rows (CAA baked into a plain HF checkpoint vs plain HF), merged "
                         "into --out")
    ap.add_argument("--only-architectures", action="store_true",
                    help="run only the per-architecture section and merge it into --out (the other sections kept)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.only_architectures:
        out = Path(args.out)
        report = json.loads(out.read_text()) if out.is_file() else {}
        report["architectures"] = _arch_overhead(args.rounds)
        report["architectures_rounds"] = args.rounds
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1))
        print(render_architectures(report))
        print(f"-> {out}")
        return 0
    if args.quick:
        args.model, args.rounds, args.new_tokens, args.fit_sizes = "tiny-hf", 2, 4, [200]
    if args.only_export:
        out = Path(args.out)
        report = json.loads(out.read_text()) if out.is_file() else {}
        report["export"] = _export_overhead(args, model, hf) if hf is not None else _export_overhead(args)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1))
        print(render_export(report["export"]))
        print(f"-> {out}")
        return 0
    torch.manual_seed(0)
    dev = args.device
    hf = None
    if args.model == "tiny-hf":
        from tl_steer.models import tiny_hf_model

        model, hf = tiny_hf_model(with_hf=True)
    else:
        model = load_model(args.model, dev)
    model.eval()
    report: dict[str, Any] = {"model": args.model, "device": dev, "threads": torch.get_num_threads(),
                              "rounds": args.rounds}
    print(f"model {args.model} on {dev}, {torch.get_num_threads()} threads, {args.rounds} interleaved rounds")

    if hf is None and args.model != "tiny":
        from tl_steer.models import load_hf

        hf, _ = load_hf(args.model, device=dev)
        hf.eval()

    # every registered method, fitted once on the same small set (defaults; MAT-Steer briefly)
    opts = FitOptions(progress=False, extra={})
    fitted = {}
    for spec in registry.specs():
        extra = {"epochs": 3} if spec.name == "mat-steer" else {}
        fitted[spec.name] = registry.fit(spec.name, model, [PAIRS], FitOptions(**{**opts.__dict__, "extra": extra}))
    hooks = {name: m.hooks(model, positions=registry.get(name).default_positions) for name, m in fitted.items()}
    all_layers = registry.get("caa").cls(
        {hook_name(i, "resid_pre"): torch.zeros(model.cfg.d_model, device=dev) for i in range(model.cfg.n_layers)},
        1.0, "caa").hooks(model)
    hooks[f"caa x {model.cfg.n_layers} layers"] = all_layers

    # ---- forward 8 x 64
    tokens = torch.randint(min(100, model.cfg.d_vocab // 2), min(model.cfg.d_vocab, 5000), (8, 64), device=dev)

    def fwd(h: list) -> Callable[[], Any]:
        def run() -> Any:
            with torch.no_grad(), steer(model, h):
                return model(tokens, return_type="logits")
        return run

    conds = {"bridge": fwd([]), **{f"bridge+{n}": fwd(h) for n, h in hooks.items()}}
    if hf is not None:
        conds["plain HF"] = lambda: hf(tokens).logits
    res = interleaved(conds, args.rounds, dev)
    report["forward_8x64"] = {"seconds": res, "ratio_vs_bridge": ratios(res, "bridge"),
                              **({"ratio_vs_hf": ratios(res, "plain HF")} if hf is not None else {})}

    # ---- KV-cached greedy generation, batch 1 and 8 (left-padded), per decode token
    tok = model.tokenizer
    for batch in (1, 8):
        prompts = PROMPTS[:batch]

        def gen(h: list, prompts: list[str] = prompts) -> Callable[[], Any]:
            def run() -> Any:
                with torch.no_grad(), steer(model, h):
                    return model.generate(prompts if len(prompts) > 1 else prompts[0], max_new_tokens=args.new_tokens,
                                          do_sample=False, stop_at_eos=False, verbose=False, padding_side="left")
            return run

        conds = {"bridge": gen([]), **{f"bridge+{n}": gen(h) for n, h in hooks.items() if "layers" not in n}}
        if hf is not None:
            enc = tok(prompts, return_tensors="pt", padding=True, padding_side="left").to(dev)

            def hf_gen(h: list, enc: Any = enc) -> Callable[[], Any]:
                def run() -> Any:
                    with torch.no_grad(), hf_steer(model, hf, h):
                        return hf.generate(**enc, max_new_tokens=args.new_tokens, do_sample=False,
                                           min_new_tokens=args.new_tokens, pad_token_id=tok.pad_token_id or tok.eos_token_id)
                return run

            conds["plain HF"] = hf_gen([])
            conds.update({f"fast path+{n}": hf_gen(h) for n, h in hooks.items() if "layers" not in n})
        res = interleaved(conds, args.rounds, dev)
        per_tok = {n: {k: v / args.new_tokens for k, v in d.items()} for n, d in res.items()}
        report[f"generate_batch{batch}"] = {"seconds_per_token": per_tok, "ratio_vs_bridge": ratios(res, "bridge"),
                                            **({"ratio_vs_hf": ratios(res, "plain HF")} if hf is not None else {})}

    # ---- collect vs a hand-written loop
    texts = list(PAIRS.positive + PAIRS.negative) * 4
    name = hook_name(model.cfg.n_layers // 2, "resid_pre")

    def by_hand() -> Any:
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), 8):
                toks = model.to_tokens(texts[i: i + 8], padding_side="left")
                _, cache = model.run_with_cache(toks, names_filter=[name], stop_at_layer=model.cfg.n_layers // 2 + 1)
                out.append(cache[name][:, -1])
        return torch.cat(out)

    res = interleaved({"collect": lambda: collect(model, texts, [name], progress=False),
                       "hand-written loop": by_hand}, args.rounds, dev)
    report["collect"] = {"seconds": res, "ratio_vs_loop": ratios(res, "hand-written loop")}

    # ---- MAT-Steer fit time (synthetic token activations, T = 3)
    from tl_steer.methods.mat_steer import MatSteer

    fit_times = {}
    for n in args.fit_sizes:
        g = torch.Generator().manual_seed(n)
        pos = {f"a{t}": torch.randn(n, model.cfg.d_model, generator=g) + t for t in range(3)}
        neg = {f"a{t}": torch.randn(n, model.cfg.d_model, generator=g) - t for t in range(3)}
        t0 = time.perf_counter()
        MatSteer.fit(pos, neg, name, epochs=2, patience=None, seed=0, progress=False, device=dev)
        fit_times[n] = {"seconds_per_epoch": (time.perf_counter() - t0) / 2}
    report["mat_steer_fit"] = fit_times

    # ---- evaluation throughput and a cached strength sweep
    report["eval"] = _eval_speed(model, fitted, args)

    # ---- every architecture family with a site table: tiny random models, bridge vs fast path
    report["architectures"] = _arch_overhead(args.rounds)
    report["export"] = _export_overhead(args, model, hf) if hf is not None else _export_overhead(args)

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(render(report))
    print(f"-> {args.out}")
    return 0


def _eval_speed(model: Any, fitted_for_sweep: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    from tl_steer.eval.scoring import score_items, score_last_token
    from tl_steer.eval.tasks import MCItem

    items = [MCItem(f"Review: {p} fine.\nSentiment:", (" positive", " negative"), (1, 0)) for p in PROMPTS] * 4
    try:
        score_last_token(model, items[:1], {"base": []})
    except Exception:  # noqa: BLE001 - multi-token choices (tiny tokenizer): one-character choices instead
        items = [MCItem(f"Review: {p} fine.\nSentiment:", ("p", "n"), (1, 0)) for p in PROMPTS] * 4
    strengths = [0.5, 1, 2, 4, 8, 16, 32, 64]
    configs = {f"s={s}": fitted_for_sweep["sadi"].hooks(model, strength=s) for s in strengths}
    t0 = time.perf_counter()
    full = {k: score_items(model, items, h, batch_size=16) for k, h in configs.items()}
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast = score_last_token(model, items, configs, batch_size=16)
    t_fast = time.perf_counter() - t0
    diff = max(abs(a - b) for k in configs for f, s in zip(fast[k], full[k], strict=True)
               for a, b in zip(f.logprob, s.logprob, strict=True))
    # multiple choice with a shared prompt: long context, 6 multi-token choices (TruthfulQA-like), once vs 6 times
    from tl_steer.eval.scoring import score_items_shared

    ctx = " ".join(PROMPTS) * 6 + "\nQ: Which of these is right?\nA:"
    mc = [MCItem(f"{p} {ctx}", (" yes it is", " no it is not", " maybe so", " never", " always true", " it depends"),
                 (1, 0, 0, 0, 0, 0)) for p in PROMPTS]
    t0 = time.perf_counter()
    a = score_items(model, mc, batch_size=8)
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    b = score_items_shared(model, mc, batch_size=8)
    t_shared = time.perf_counter() - t0
    shared = {"items": len(mc), "choices": 6, "score_items_items_per_s": len(mc) / t_full,
              "shared_prompt_items_per_s": len(mc) / t_shared, "speedup": t_full / t_shared,
              "max_abs_logprob_diff": max(abs(x - y) for u, v in zip(a, b, strict=True)
                                          for x, y in zip(u.logprob, v.logprob, strict=True))}

    # per-row strengths: the same 8-point sweep of a margin, as one batch of 8 copies vs 8 passes (every method)
    from tl_steer.sweep import margin_sweep

    per_row = {}
    for name in ("caa", "sadi"):
        m = fitted_for_sweep[name]
        t0 = time.perf_counter()
        a = margin_sweep(m, model, PROMPTS, " good", " bad", strengths, per_row=False)
        t_loop = time.perf_counter() - t0
        t0 = time.perf_counter()
        b = margin_sweep(m, model, PROMPTS, " good", " bad", strengths, per_row=True)
        t_rows = time.perf_counter() - t0
        per_row[name] = {"loop_s": t_loop, "per_row_s": t_rows, "speedup": t_loop / t_rows,
                         "max_abs_diff": max(abs(a[k] - b[k]) for k in a)}
    return {"items": len(items), "sweep_points": len(strengths), "per_row_strength_sweep": per_row,
            "shared_prompt_mc": shared,
            "score_items_items_per_s": len(items) * len(strengths) / t_full,
            "score_last_token_items_per_s": len(items) * len(strengths) / t_fast,
            "sweep_speedup": t_full / t_fast, "max_abs_logprob_diff": diff}


def _arch_overhead(rounds: int) -> dict[str, dict[str, float]]:
    """Per architecture family (``tl_steer.arch.ARCH_SITES``), on a tiny random model (2 layers, width 64), forward
    4 x 32 tokens: the steered fast path (``hf_steer``, one resid_pre hook and one hook_z hook) against plain HF,
    and the steered bridge against the unsteered bridge. Tiny models measure the per-hook Python cost, not FLOPs."""
    from tl_steer import scoped, steer
    from tl_steer.models import tiny_arch_configs, tiny_arch_model
    from tl_steer.sites import feature_shape

    out: dict[str, dict[str, float]] = {}
    for arch in tiny_arch_configs():
        bridge, hf = tiny_arch_model(arch)
        toks = torch.randint(3, 90, (4, 32), generator=torch.Generator().manual_seed(0))
        hooks = []
        for site in ("resid_pre", "z"):
            vec = torch.randn(*feature_shape(bridge, site), generator=torch.Generator().manual_seed(1))
            hooks.append((hook_name(1, site), scoped(lambda a, hook, v=vec: a + v, "all", bridge)))

        def bridge_run(h: list, bridge: Any = bridge, toks: torch.Tensor = toks) -> Callable[[], Any]:
            def run() -> Any:
                with torch.no_grad(), steer(bridge, h):
                    return bridge(toks)
            return run

        def hf_run(h: list | None, hf: Any = hf, bridge: Any = bridge, toks: torch.Tensor = toks) -> Callable[[], Any]:
            def run() -> Any:
                with torch.no_grad():
                    if h is None:
                        return hf(input_ids=toks).logits
                    with hf_steer(bridge, hf, h):
                        return hf(input_ids=toks).logits
            return run

        res = interleaved({"bridge": bridge_run([]), "bridge+hooks": bridge_run(hooks), "plain HF": hf_run(None),
                           "fast path+hooks": hf_run(hooks)}, rounds, "cpu")
        out[arch] = {"bridge+hooks vs bridge": res["bridge+hooks"]["median"] / res["bridge"]["median"],
                     "fast path+hooks vs plain HF": res["fast path+hooks"]["median"] / res["plain HF"]["median"],
                     "bridge vs plain HF": res["bridge"]["median"] / res["plain HF"]["median"]}
    return out


def _export_overhead(args: argparse.Namespace, model: Any = None, hf: Any = None) -> dict[str, Any]:
    """CAA baked into a plain HF checkpoint (``tl_steer.exporting``) against the unsteered plain HF model, the fast
    path (hooks on plain HF) and the bridge with hooks: forward 8 x 64 and KV-cached greedy decoding, batch 1 and 8.
    ``model`` / ``hf``: the bridge and its HF twin when the caller has them loaded already."""
    import tempfile

    from transformers import AutoModelForCausalLM

    from tl_steer.exporting import export
    from tl_steer.models import load_hf, tiny_hf_model

    dev = args.device
    if model is None or hf is None:
        if args.model == "tiny-hf":
            model, hf = tiny_hf_model(with_hf=True)
        else:
            model = load_model(args.model, dev)
            hf, _ = load_hf(args.model, device=dev)
    model.eval()
    hf.eval()
    caa = registry.fit("caa", model, [PAIRS], FitOptions(progress=False)).with_strength(2.0)
    hooks = caa.hooks(model, positions="all")
    tok = model.tokenizer
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = export(caa, model, Path(tmp) / "caa", hf_model=hf)
        baked = AutoModelForCausalLM.from_pretrained(path, dtype=next(hf.parameters()).dtype).to(dev).eval()
        out["max_logit_diff"] = json.loads((path / "tl_steer_export.json").read_text())["max_logit_diff"]
        tokens = torch.randint(min(100, model.cfg.d_vocab // 2), min(model.cfg.d_vocab, 5000), (8, 64), device=dev)

        def bridge_fwd() -> Any:
            with torch.no_grad(), steer(model, hooks):
                return model(tokens, return_type="logits")

        def fast_fwd() -> Any:
            with torch.no_grad(), hf_steer(model, hf, hooks):
                return hf(tokens).logits

        with torch.no_grad():
            res = interleaved({"plain HF": lambda: hf(tokens).logits, "exported checkpoint, plain HF":
                               lambda: baked(tokens).logits, "fast path+caa": fast_fwd, "bridge+caa": bridge_fwd},
                              args.rounds, dev)
        out["forward_8x64"] = {"seconds": res, "ratio_vs_hf": ratios(res, "plain HF")}
        for batch in (1, 8):
            enc = tok(PROMPTS[:batch], return_tensors="pt", padding=True, padding_side="left").to(dev)
            kw = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False,
                      pad_token_id=tok.pad_token_id or tok.eos_token_id)

            def run(m: Any, h: list | None = None, enc: Any = enc, kw: dict = kw) -> Callable[[], Any]:
                def go() -> Any:
                    with torch.no_grad():
                        if h is None:
                            return m.generate(**enc, **kw)
                        with hf_steer(model, m, h):
                            return m.generate(**enc, **kw)
                return go

            res = interleaved({"plain HF": run(hf), "exported checkpoint, plain HF": run(baked),
                               "fast path+caa": run(hf, hooks)}, args.rounds, dev)
            out[f"generate_batch{batch}"] = {"seconds": res, "ratio_vs_hf": ratios(res, "plain HF")}
    return out


def render_export(e: dict[str, Any]) -> str:
    lines = [f"\nexported checkpoint (CAA baked in; max |Δ logit| vs the steered bridge {e['max_logit_diff']:.1e}): "
             "condition | ratio vs plain HF"]
    for key in ("forward_8x64", "generate_batch1", "generate_batch8"):
        lines.append(f"  {key}: " + ", ".join(f"{n} {v:.3f}x" for n, v in e[key]["ratio_vs_hf"].items()))
    return "\n".join(lines)


def render(r: dict[str, Any]) -> str:
    lines = [f"\n{r['model']} on {r['device']} ({r['threads']} threads), ratios of medians over {r['rounds']} rounds"]
    for key, unit in (("forward_8x64", "seconds"), ("generate_batch1", "seconds_per_token"),
                      ("generate_batch8", "seconds_per_token")):
        d = r[key]
        lines.append(f"\n{key}: condition | median {unit} | vs bridge" + (" | vs plain HF" if "ratio_vs_hf" in d else ""))
        for n, v in d[unit].items():
            row = f"  {n:<28} {v['median']:.4f}  {d['ratio_vs_bridge'][n]:.3f}x"
            if "ratio_vs_hf" in d:
                row += f"  {d['ratio_vs_hf'][n]:.3f}x"
            lines.append(row)
    c = r["collect"]
    lines.append(f"\ncollect vs hand-written loop: {c['ratio_vs_loop']['collect']:.3f}x")
    lines.append("MAT-Steer fit (T = 3): " + ", ".join(f"N={n}: {v['seconds_per_epoch']:.2f} s/epoch"
                                                    for n, v in r["mat_steer_fit"].items()))
    e = r["eval"]
    lines.append(f"SADI 8-point strength sweep on {e['items']} items: score_items {e['score_items_items_per_s']:.1f} "
                 f"item-configs/s, score_last_token {e['score_last_token_items_per_s']:.1f} ({e['sweep_speedup']:.1f}x; "
                 f"max |Δ logprob| {e['max_abs_logprob_diff']:.1e})")
    sp = e["shared_prompt_mc"]
    lines.append(f"multiple choice, {sp['choices']} choices on a long shared prompt: score_items "
                 f"{sp['score_items_items_per_s']:.2f} items/s, prompt once {sp['shared_prompt_items_per_s']:.2f} items/s "
                 f"({sp['speedup']:.2f}x; max |Δ logprob| {sp['max_abs_logprob_diff']:.1e})")
    for name, v in e["per_row_strength_sweep"].items():
        lines.append(f"{name} 8-point strength sweep (margin, {len(PROMPTS)} prompts): one batch with per-row strengths "
                     f"{v['speedup']:.2f}x faster than 8 passes (max |Δ| {v['max_abs_diff']:.1e})")
    lines.append(render_architectures(r))
    if "export" in r:
        lines.append(render_export(r["export"]))
    return "\n".join(lines)


def render_architectures(r: dict[str, Any]) -> str:
    if "architectures" not in r:
        return ""
    lines = ["\ntiny random model per architecture family, forward 4 x 32 (ratios of medians):",
             f"  {'family':<12} bridge+hooks/bridge  fast path+hooks/plain HF  bridge/plain HF"]
    for arch, v in r["architectures"].items():
        lines.append(f"  {arch:<12} {v['bridge+hooks vs bridge']:>10.2f}x {v['fast path+hooks vs plain HF']:>16.2f}x"
                     f" {v['bridge vs plain HF']:>18.2f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
