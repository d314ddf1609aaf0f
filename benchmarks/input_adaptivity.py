"""Input-adaptivity on real models: at a matched steering effect on undesirable inputs, how much does each method
change inputs that were already desirable?

MAT-Steer (gates) and SADI (``a + delta * M ⊙ a``) both claim to edit where needed and leave the rest alone; CAA and
PCA add the same vector everywhere. Per model (SmolLM2-135M-Instruct, Gemma-3-270M) and attribute:

* **toxicity**: ParaDetox, neutral paraphrase (desirable) vs its toxic source (undesirable);
* **sentiment**: SST-2 dev sentences, positive (desirable) vs negative (undesirable).

Every method is fitted on the same 200 + 200 texts per attribute (last-token ``resid_pre`` at the middle layer;
MAT-Steer once on both attributes, tuned preset; SADI on that layer's hidden units, K = 5% of them, signed top, and
``sadi_heads``, SADI's head variant: the top 16 heads by mean ``hook_z`` difference over all layers),
and applied at every token of 64 + 64 held-out texts per attribute, at 6 strengths each (equal budgets):

* **effect** on undesirable inputs, read downstream of the edit: the last token's projection at the last layer's
  ``resid_post`` on the attribute's mean-difference direction (fitted on the unsteered fit texts), as a fraction of
  the gap between the fit texts' desirable and undesirable means along it (0 = unchanged, 1 = moved by the whole
  gap; the held-out gap is reported as ``test_gap``);
* **collateral** on desirable inputs: KL(unsteered || steered) of the next-token distribution, mean over every real
  token, and the edit norm ``|a' - a| / |a|`` per token at the edited site (methods that edit that site); the same on undesirable inputs and, for
  MAT-Steer, the mean gate per attribute on each kind of text.

The table interpolates each method's collateral at matched effects (0.25, 0.5, 1.0) along its strength curve.
Checkpointed per (model, attribute, method, strength) in ``<out>/rows.jsonl``.

    python benchmarks/input_adaptivity.py --out results/input_adaptivity --models smollm2 gemma3
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import tl_steer as ts  # noqa: E402
from tl_steer.collect import tokenize_left  # noqa: E402
from tl_steer.eval.gates import load_paradetox  # noqa: E402
from tl_steer.eval.sources import sst2_rows  # noqa: E402
from tl_steer.methods.diff_means import mean_diff_from_activations  # noqa: E402
from tl_steer.methods.mat_steer import MatSteer  # noqa: E402
from tl_steer.methods.pca import pca_from_activations  # noqa: E402
from tl_steer.methods.sadi import Sadi  # noqa: E402
from tl_steer.models import load_named  # noqa: E402

MODELS = {"smollm2": "smollm2-135m-instruct", "gemma3": "gemma3-270m"}
_GRID = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
#: every method's strength grid (the same six points; extended by doubling, see MAX_STRENGTH). ``sadi``: hidden
#: units of the edited layer's residual stream; ``sadi_heads``: the paper's head variant, top-16 heads (``hook_z``)
#: over all layers
STRENGTHS = {"caa": _GRID, "pca": _GRID, "mat_steer": _GRID, "sadi": _GRID, "sadi_heads": _GRID}
SADI_HEADS_K = 16
MATCHED = (0.25, 0.5, 1.0)
#: the grid doubles past its last point until the effect reaches max(MATCHED), up to this strength, or until the
#: undesirable inputs' KL passes MAX_KL (the model no longer says anything like what it said), or the effect stops
#: growing
MAX_STRENGTH, MAX_KL = 256.0, 5.0


def grid_done(rows: list[dict], model: str, attr: str, method: str) -> bool:
    rs = sorted((r for r in rows if (r["model"], r["attribute"], r["method"]) == (model, attr, method)),
                key=lambda r: r["strength"])
    if not rs:
        return False
    last = rs[-1]
    turned = len(rs) > 1 and last["effect"] <= rs[-2]["effect"]
    return (last["effect"] >= max(MATCHED) or last["strength"] >= MAX_STRENGTH or last["kl_und"] >= MAX_KL
            or turned) and \
        {r["strength"] for r in rs} >= set(STRENGTHS[method])


def attribute_texts(n_fit: int, n_test: int, seed: int = 0) -> dict[str, dict[str, list[str]]]:
    """``{attribute: {"fit_des", "fit_und", "test_des", "test_und"}}``, disjoint fit and test texts."""
    para = load_paradetox(limit=n_fit + n_test, seed=seed)
    rows = sst2_rows()
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed)).tolist()
    pos = [rows[i]["text"].strip() for i in order if rows[i]["label"] == "1"]
    neg = [rows[i]["text"].strip() for i in order if rows[i]["label"] == "0"]
    return {
        "toxicity": {"fit_des": list(para.positive[:n_fit]), "fit_und": list(para.negative[:n_fit]),
                     "test_des": list(para.positive[n_fit:]), "test_und": list(para.negative[n_fit:])},
        "sentiment": {"fit_des": pos[:n_fit], "fit_und": neg[:n_fit],
                      "test_des": pos[n_fit:n_fit + n_test], "test_und": neg[n_fit:n_fit + n_test]},
    }


class Runner:
    """Forward passes of held-out texts with a method's hooks: logits, the readout activation and the edit norm."""

    def __init__(self, model, site: str, readout: str, batch_size: int = 16) -> None:
        self.model, self.site, self.readout, self.batch_size = model, site, readout, batch_size

    @torch.no_grad()
    def run(self, texts: list[str], hooks: list, base: dict | None = None) -> dict[str, list[torch.Tensor]]:
        """Per batch: the readout, the edit norm per real token, and either the next-token log-probs (``base`` not
        given: kept in float16, the reference for KL) or the KL from ``base``'s log-probs per real token (nothing
        of vocabulary size is kept: Gemma-3's 262k-token vocabulary would take gigabytes)."""
        out: dict[str, list[torch.Tensor]] = {"logp": [], "kl": [], "read": [], "edit": [], "mask": []}
        for i in range(0, len(texts), self.batch_size):
            tokens, mask = tokenize_left(self.model, texts[i: i + self.batch_size])
            seen: dict[str, torch.Tensor] = {}

            def before(act, hook, seen=seen):
                seen["pre"] = act.detach().clone()

            def after(act, hook, seen=seen):
                seen["post"] = act.detach().clone()

            def read(act, hook, seen=seen):
                seen["read"] = act[:, -1].detach().float().clone()

            with ts.steer(self.model, [(self.site, before), *hooks, (self.site, after), (self.readout, read)]):
                logits = self.model(tokens, attention_mask=mask, return_type="logits")
            m = mask.bool()
            edit = (seen["post"] - seen["pre"]).float().norm(dim=-1) / seen["pre"].float().norm(dim=-1).clamp_min(1e-6)
            logp = logits.float().log_softmax(-1)[m]
            if base is None:
                out["logp"].append(logp.to(torch.float16).cpu())
            else:
                ref = base["logp"][i // self.batch_size].float()
                out["kl"].append((ref.exp() * (ref - logp)).sum(-1).cpu())
            del logits, logp
            out["read"].append(seen["read"].cpu())
            out["edit"].append(edit[m].cpu())
            out["mask"].append(m.cpu())
        return out


def kl(per_token: list[torch.Tensor]) -> float:
    """Mean KL(unsteered || steered) over every real token."""
    return float(torch.cat(per_token).mean())


def fit_methods(model, texts: dict, site: str, seed: int) -> dict[str, object]:
    """Every method on the same fit texts (last token at ``site``); MAT-Steer once on all attributes."""
    acts = {a: {side: ts.collect(model, texts[a][side], site, read="last", progress=False).acts[site]
                for side in ("fit_des", "fit_und")} for a in texts}
    fitted: dict[str, object] = {}
    for a in texts:
        P, N = {site: acts[a]["fit_des"]}, {site: acts[a]["fit_und"]}
        k = max(1, round(0.05 * P[site].shape[-1]))
        fitted[("caa", a)] = mean_diff_from_activations(P, N)
        fitted[("pca", a)] = pca_from_activations(P, N, seed=seed)
        fitted[("sadi", a)] = Sadi.from_activations(P, N, k=k)
    mat = MatSteer.fit({a: acts[a]["fit_des"] for a in texts}, {a: acts[a]["fit_und"] for a in texts}, site,
                          seed=seed, progress=False)
    for a in texts:
        fitted[("mat_steer", a)] = mat
    z_names = [f"blocks.{lay}.attn.hook_z" for lay in range(model.cfg.n_layers)]
    for a in texts:
        z = {side: ts.collect(model, texts[a][side], z_names, read="last", progress=False).acts
             for side in ("fit_des", "fit_und")}
        k = min(SADI_HEADS_K, model.cfg.n_layers * model.cfg.n_heads)
        fitted[("sadi_heads", a)] = Sadi.from_activations(z["fit_des"], z["fit_und"], k=k)
    return fitted


def measure(model, runner: Runner, texts: dict, base: dict, m, s: float, site: str, direction: torch.Tensor,
            proj: dict, gap: float) -> dict:
    """One method at one strength on the held-out texts of one attribute."""
    t1 = time.perf_counter()
    hooks = m.hooks(model, positions="all", strength=s)
    at_site = all(name == site for name, _ in hooks)  # the edit norm is measured at ``site`` only
    res = {side: runner.run(texts[side], hooks, base[side]) for side in ("test_des", "test_und")}
    steered_und = float((torch.cat(res["test_und"]["read"]) @ direction).mean())
    row = {"effect": (steered_und - float(proj["test_und"].mean())) / gap, "gap": gap,
           "test_gap": float(proj["test_des"].mean() - proj["test_und"].mean()),
           "kl_des": kl(res["test_des"]["kl"]),
           "kl_und": kl(res["test_und"]["kl"]),
           "edit_des": float(torch.cat(res["test_des"]["edit"]).mean()) if at_site else float("nan"),
           "edit_und": float(torch.cat(res["test_und"]["edit"]).mean()) if at_site else float("nan")}
    if isinstance(m, MatSteer):
        for side in ("test_des", "test_und"):
            acts = ts.collect(model, texts[side], site, read="all", progress=False)
            g = m.gates(acts.acts[site])[acts.mask]  # (tokens, attr)
            row[f"gates_{side}"] = {a: float(g[:, i].mean()) for i, a in enumerate(m.attributes)}
    row["seconds"] = time.perf_counter() - t1
    return row


def gate_table(model, mat: MatSteer, texts: dict, site: str) -> list[dict]:
    """Each MAT-Steer gate on held-out texts: AUC of its own attribute's undesirable vs desirable texts, and vs the
    other attributes' undesirable texts, at every token and at the last token (the rows it was fitted on)."""
    from planted import auc

    gates = {}
    for a in texts:
        for side in ("test_des", "test_und"):
            acts = ts.collect(model, texts[a][side], site, read="all", progress=False)
            g = mat.gates(acts.acts[site])  # (n, pos, attr), left-padded
            gates[(a, side)] = {"all": g[acts.mask], "last": g[:, -1]}
    out = []
    for i, a in enumerate(mat.attributes):
        row = {"attribute": a}
        for where in ("all", "last"):
            own, des = gates[(a, "test_und")][where][:, i], gates[(a, "test_des")][where][:, i]
            others = [gates[(b, "test_und")][where][:, i] for b in mat.attributes if b != a]
            row[f"auc_{where}"] = auc(own, des)
            row[f"auc_others_{where}"] = auc(own, torch.cat(others)) if others else float("nan")
            row[f"g_own_{where}"], row[f"g_des_{where}"] = float(own.mean()), float(des.mean())
            row[f"g_other_{where}"] = float(torch.cat(others).mean()) if others else float("nan")
        out.append(row)
    return out


def interpolate(curve: list[tuple[float, float]], target: float) -> float:
    """The collateral at the first point where the effect reaches ``target`` (linear between grid points); NaN if
    the curve never gets there."""
    prev = (0.0, 0.0)
    for eff, col in curve:
        if eff >= target:
            e0, c0 = prev
            return c0 + (col - c0) * (target - e0) / (eff - e0) if eff > e0 else col
        prev = (eff, col)
    return float("nan")


def table(rows: list[dict]) -> str:
    lines = ["| model | attribute | method | max effect | " + " | ".join(
        f"KL des @ {t:g} | edit des @ {t:g}" for t in MATCHED) + " |",
        "|---|---|---|---|" + "---|---|" * len(MATCHED)]
    keys = sorted({(r["model"], r["attribute"], r["method"]) for r in rows})
    for model, attr, method in keys:
        rs = sorted((r for r in rows if (r["model"], r["attribute"], r["method"]) == (model, attr, method)),
                    key=lambda r: r["strength"])
        kl_curve = [(r["effect"], r["kl_des"]) for r in rs]
        ed_curve = [(r["effect"], r["edit_des"]) for r in rs]
        cells = []
        for t in MATCHED:
            k, e = interpolate(kl_curve, t), interpolate(ed_curve, t)
            cells.append("—" if math.isnan(k) else f"{k:.4f}")
            cells.append("—" if math.isnan(e) else f"{e:.3f}")
        lines.append(f"| {model} | {attr} | {method} | {max(r['effect'] for r in rs):.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gate_md(gate_rows: list[dict]) -> str:
    """MAT-Steer's gates on held-out texts: AUC against desirable texts and against the other attribute's
    undesirable texts, at the last token (the rows it was fitted on) and at every token."""
    lines = ["| model | gate | AUC vs desirable (last token) | AUC vs other attribute (last token) | mean gate: own / "
             "desirable / other (last token) | AUC vs desirable (every token) |", "|---|---|---|---|---|---|"]
    for g in gate_rows:
        lines.append(f"| {g['model']} | {g['attribute']} | {g['auc_last']:.3f} | {g['auc_others_last']:.3f} | "
                     f"{g['g_own_last']:.2f} / {g['g_des_last']:.2f} / {g['g_other_last']:.2f} | {g['auc_all']:.3f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["model"], r["attribute"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.9), squeeze=False)
    for ax, (model, attr) in zip(axes[0], panels, strict=True):
        for i, method in enumerate(sorted({r["method"] for r in rows})):
            rs = sorted((r for r in rows if (r["model"], r["attribute"], r["method"]) == (model, attr, method)),
                        key=lambda r: r["strength"])
            if rs:
                ax.plot([r["effect"] for r in rs], [max(r["kl_des"], 1e-6) for r in rs], marker="o", ms=3,
                        color=plt.cm.tab10(i), label=method)
        ax.set_yscale("log")
        ax.axvline(0.5, color="grey", lw=0.6, ls=":")
        ax.set(title=f"{model}: {attr}", xlabel="effect on undesirable inputs (gap closed)",
               ylabel="KL on desirable inputs")
        ax.legend(fontsize=7)
    fig.suptitle("Edit where needed, not elsewhere: lower curves are more input-adaptive", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/input_adaptivity")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS) + ["tiny"])
    ap.add_argument("--n-fit", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=64)
    ap.add_argument("--methods", nargs="+", default=list(STRENGTHS), choices=list(STRENGTHS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--also", nargs="*", default=[], type=Path,
                    help="other results folders (runs of other methods) whose rows and gates join the report (read only)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done_file = out / "rows.jsonl"
    rows = [json.loads(x) for x in done_file.read_text().splitlines()] if done_file.exists() else []
    done = {(r["model"], r["attribute"], r["method"], r["strength"]) for r in rows}
    texts = attribute_texts(args.n_fit, args.n_test, args.seed)
    for name in args.models:
        todo = [(a, m, s) for a in texts for m in args.methods for s in STRENGTHS[m] if (name, a, m, s) not in done]
        if not todo and all(grid_done(rows, name, a, m) for a in texts for m in args.methods):
            continue
        todo = todo or [(a, m, None) for a in texts for m in args.methods]
        t0 = time.perf_counter()
        model = load_named(MODELS.get(name, name), device="cpu")
        L = model.cfg.n_layers
        site, readout = f"blocks.{L // 2}.hook_resid_pre", f"blocks.{L - 1}.hook_resid_post"
        fitted = fit_methods(model, texts, site, args.seed)
        runner = Runner(model, site, readout)
        base = {a: {side: runner.run(texts[a][side], []) for side in ("test_des", "test_und")} for a in texts}
        fit_read = {a: {side: ts.collect(model, texts[a][side], readout, read="last", progress=False).acts[readout]
                        for side in ("fit_des", "fit_und")} for a in texts}
        print(f"[adaptivity] {name}: fitted and base runs in {time.perf_counter() - t0:.0f} s", flush=True)
        gates_file = out / "gates.jsonl"
        gate_rows = [json.loads(x) for x in gates_file.read_text().splitlines()] if gates_file.exists() else []
        mat = fitted.get(("mat_steer", next(iter(texts))))
        if mat is not None and not any(r["model"] == name for r in gate_rows):
            with gates_file.open("a") as f:
                for r in gate_table(model, mat, texts, site):
                    f.write(json.dumps({"model": name, **r}) + "\n")
        for attr, method in dict.fromkeys((a, m) for a, m, _ in todo):
            direction = fit_read[attr]["fit_des"].mean(0) - fit_read[attr]["fit_und"].mean(0)
            proj = {side: torch.cat(base[attr][side]["read"]) @ direction for side in ("test_des", "test_und")}
            gap = float(direction @ direction)  # the fit texts' gap along their own direction (> 0 by construction)
            m = fitted[(method, attr)]
            grid, last_effect = list(STRENGTHS[method]), -math.inf
            while grid:
                s = grid.pop(0)
                prior = [r for r in rows if (r["model"], r["attribute"], r["method"], r["strength"]) == (name, attr, method, s)]
                row = prior[0] if prior else None
                if row is None:
                    row = measure(model, runner, texts[attr], base[attr], m, s, site, direction, proj, gap)
                    row = {"model": name, "attribute": attr, "method": method, "strength": s, **row}
                    with done_file.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    rows.append(row)
                    print(f"[adaptivity] {name} {attr} {method} s={s}: effect {row['effect']:.2f} "
                          f"kl_des {row['kl_des']:.4f} kl_und {row['kl_und']:.4f} edit_des {row['edit_des']:.3f}",
                          flush=True)
                # extend the grid (doubling) until the largest matched effect is reached or the model breaks
                if (not grid and row["effect"] < max(MATCHED) and s < MAX_STRENGTH and row["kl_und"] < MAX_KL
                        and row["effect"] > last_effect):
                    grid.append(2 * s)
                last_effect = row["effect"]
        del model
    gate_rows = []
    for folder in [out, *args.also]:
        if folder != out and (folder / "rows.jsonl").exists():
            rows += [json.loads(x) for x in (folder / "rows.jsonl").read_text().splitlines()]
        if (folder / "gates.jsonl").exists():
            gate_rows += [json.loads(x) for x in (folder / "gates.jsonl").read_text().splitlines()]
    gate_rows = list({json.dumps(r, sort_keys=True): r for r in gate_rows}.values())  # one per (model, gate)
    md = table(rows)
    if gate_rows:
        md += "\n\n" + gate_md(gate_rows)
    (out / "input_adaptivity.md").write_text(md + "\n")
    # the report's rows, this run's and --also's: what docs/assets keeps
    (out / "report_rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "report_gates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gate_rows))
    if rows:
        plot(rows, out / "input_adaptivity.png")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
