"""Planted truth for CAA, PCA, SADI and ITI: does each method recover what was planted, against its own ceiling?

The same idea as ``benchmarks/planted.py`` (MAT-Steer's gates), for what the other methods claim to find:

* **direction** (CAA, PCA/RepE). Rows ``x`` from a base distribution; the attribute's rows are
  ``x + shift * sigma_u * u`` (``sigma_u``: the base's std along the unit direction ``u``), n per side:
  ``unpaired`` (the i-th positive and negative rows are unrelated) or ``paired`` (each positive row is its negative
  row plus the shift plus half the base's spread, as in contrast pairs that differ only in the attribute).
  Measured: the signed cosine of the recovered vector with ``u``. Ceiling: the mean-difference estimator's own
  expected cosine at this n on this base (Monte Carlo over fresh rows; for Gaussian rows the mean difference is the
  maximum-likelihood estimate of the shift, so nothing does better); ``first_order`` is its closed form
  ``|delta| / sqrt(|delta|^2 + tr(noise covariance))``, which heavy-tailed real rows make too pessimistic.
* **heads** (SADI-HEAD, ITI). Rows ``(layer, head, d_head)`` (``hook_z``); the signal is planted in K heads, each
  shifted by ``shift * sigma_h`` along a unit direction ``v_h``: ``pattern="mean"`` (every unit of the head moves
  up together, ``v_h = 1/sqrt(d_head)``) or ``pattern="random"`` (a random unit vector, whose units average about
  zero). Measured: recall@K of the heads SADI's mask selects and of ITI's top-K probes; ITI's direction cosine with
  ``v_h`` on the planted heads it selects. Ceiling for selection: heads ranked by Hotelling's T^2 of their mean
  difference with the base's own covariance (an oracle that knows the noise but not the direction); SADI's head
  score, the mean over units, assumes the direction instead: it can beat that ceiling when the assumption holds
  (``mean``) and is blind when it does not (``random``). For the cosine: the first-order mean-difference bound.
* **neurons** (SADI-NEURON / hidden units). Rows ``(unit,)``; K units shifted up by ``shift * sd_i``. Measured:
  recall@K of SADI's mask. Ceiling: units ranked by their two-sample t-statistic.

Bases: ``gaussian`` (isotropic) or ``smollm2`` / ``gemma3`` (real activations of neutral text: the residual
stream at the middle layer for directions, ``hook_z`` of four layers for heads, ``mlp.hook_post`` of the middle layer
for neurons), with their outliers and unequal variances kept. Every cell is checkpointed in ``<out>/cells.jsonl``.

    python benchmarks/planted_methods.py --out results/planted_methods --base gaussian smollm2 gemma3
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tl_steer.methods.diff_means import mean_diff_from_activations  # noqa: E402
from tl_steer.methods.iti import Iti  # noqa: E402
from tl_steer.methods.pca import pca_from_activations  # noqa: E402
from tl_steer.methods.sadi import Sadi  # noqa: E402

MODELS = {"smollm2": "smollm2-135m-instruct", "gemma3": "gemma3-270m"}
#: Gaussian shapes: residual width; hook_z as (layers, heads, d_head); neurons
GAUSS = {"direction": (576,), "heads": (4, 9, 64), "neurons": (1536,)}
#: direction suite: ``unpaired`` rows, or ``paired`` ones whose difference carries tau = 0.5 of the base's spread
PAIR_NOISE = {"unpaired": None, "paired": 0.5}


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a.flatten().double(), b.flatten().double()) / (a.norm() * b.norm()).clamp_min(1e-12))


def noise_ceiling(delta_norm: float, trace: float, n_pos: int, n_neg: int) -> float:
    """Expected cosine of a mean-difference estimate with the true shift (first order in the noise)."""
    return delta_norm / math.sqrt(delta_norm ** 2 + trace * (1 / n_pos + 1 / n_neg))


def recall(selected: set[int], planted: set[int]) -> float:
    return len(selected & planted) / len(planted)


class Rows:
    """Draws base rows of one suite: isotropic Gaussian of a shape, or real activation rows without replacement."""

    def __init__(self, shape: tuple[int, ...], g: torch.Generator, pool: torch.Tensor | None) -> None:
        self.shape, self.g, self.pool, self.next = shape, g, pool, 0
        if pool is not None:
            self.shape = tuple(pool.shape[1:])
            self.order = torch.randperm(len(pool), generator=g)

    def __call__(self, m: int) -> torch.Tensor:
        if self.pool is None:
            return torch.randn(m, *self.shape, generator=self.g)
        if self.next + m > len(self.pool):
            raise SystemExit(f"the pool has {len(self.pool)} rows; a larger --pool")
        idx = self.order[self.next: self.next + m]
        self.next += m
        return self.pool[idx]

    def resampler(self, g: torch.Generator):
        """Draws with replacement from the same base (for Monte-Carlo ceilings; leaves the cell's rows alone)."""
        if self.pool is None:
            return lambda m: torch.randn(m, *self.shape, generator=g)
        return lambda m: self.pool[torch.randint(len(self.pool), (m,), generator=g)]

    def std(self) -> torch.Tensor:
        """Per-element std of the base (ones for the Gaussian)."""
        return torch.ones(self.shape) if self.pool is None else self.pool.std(0)

    def head_precision(self) -> torch.Tensor:
        """Inverse covariance of every head's ``d_head`` units, ``(layer, head, d_head, d_head)`` (float64; a small
        ridge keeps it finite)."""
        L, H, dh = self.shape
        if self.pool is None:
            return torch.eye(dh, dtype=torch.float64).expand(L, H, dh, dh)
        x = self.pool.double().reshape(len(self.pool), L * H, dh)
        x = x - x.mean(0)
        cov = torch.einsum("nhi,nhj->hij", x, x) / (len(x) - 1)
        ridge = 1e-6 * cov.diagonal(dim1=1, dim2=2).mean(1)[:, None, None] * torch.eye(dh, dtype=torch.float64)
        return torch.linalg.inv(cov + ridge).reshape(L, H, dh, dh)

    def trace_along(self, dims: tuple[int, ...] = ()) -> torch.Tensor:
        """Total variance, summed over the trailing dims given (all when none)."""
        var = self.std() ** 2
        return var.sum() if not dims else var.sum(dim=dims)


def real_pools(model_name: str, n_rows: int) -> dict[str, torch.Tensor]:
    """Activations of neutral text (BoolQ passages, every token): resid_pre and mlp.hook_post at the middle layer,
    hook_z at four evenly spaced layers stacked as (layer, head, d_head)."""
    import tl_steer as ts
    from tl_steer.eval.sources import boolq_rows

    model = ts.load(model_name, device="cpu")
    L = model.cfg.n_layers
    mid = L // 2
    z_layers = [round(i * (L - 1) / 3) for i in range(4)]
    names = [f"blocks.{mid}.hook_resid_pre", f"blocks.{mid}.mlp.hook_post"] + [f"blocks.{lay}.attn.hook_z" for lay in z_layers]
    texts = [r["passage"][:400] for r in boolq_rows()[:300]]
    coll = ts.collect(model, texts, names, read="all", batch_size=8, progress=False)
    keep = torch.randperm(int(coll.mask.sum()), generator=torch.Generator().manual_seed(0))[:n_rows]
    rows = {name: coll.acts[name][coll.mask][keep].float() for name in names}
    return {"direction": rows[names[0]], "neurons": rows[names[1]],
            "heads": torch.stack([rows[n] for n in names[2:]], 1)}


def mc_ceiling(delta: torch.Tensor, noise, draws: int = 32) -> float:
    """Mean cosine of ``delta + noise()`` with ``delta`` over ``draws`` fresh noise draws: the mean-difference
    estimator's own cosine at this n, on this base (heavy-tailed real rows make the first-order formula
    ``noise_ceiling`` too pessimistic)."""
    return sum(cos(delta + noise(), delta) for _ in range(draws)) / draws


def direction_cell(cell: dict, pool: torch.Tensor | None) -> dict:
    g = torch.Generator().manual_seed(1000 * cell["seed"] + 1)
    rows = Rows(GAUSS["direction"], g, pool)
    d = rows.shape[0]
    u = torch.randn(d, generator=g)
    u = u / u.norm()
    sigma_u = 1.0 if pool is None else float((pool @ u).std())
    delta = cell["shift"] * sigma_u * u
    n = cell["n"]
    tau = PAIR_NOISE[cell["pairing"]]
    if tau is None:  # unpaired: the i-th positive and negative rows are unrelated texts
        neg, pos = rows(n), rows(n) + delta
    else:  # paired: each positive is its negative plus the shift plus tau * (a difference of two base rows) / sqrt 2
        neg = rows(n)
        pos = neg + delta + tau * (rows(n) - rows(n)) / math.sqrt(2)
    name = "blocks.0.hook_resid_pre"
    caa = mean_diff_from_activations({name: pos}, {name: neg}).vectors[name]
    pca = pca_from_activations({name: pos}, {name: neg}, seed=cell["seed"]).vectors[name]
    scale = math.sqrt(2) if tau is None else tau
    mc = rows.resampler(torch.Generator().manual_seed(cell["seed"] + 7))
    ceiling = mc_ceiling(delta, lambda: scale * (mc(n) - mc(n)).mean(0) / math.sqrt(2))
    return {"caa_cos": cos(caa, u), "pca_cos": cos(pca, u), "ceiling": ceiling,
            "first_order": noise_ceiling(float(delta.norm()), float(rows.trace_along()) * scale ** 2 / 2, n, n)}


def heads_cell(cell: dict, pool: torch.Tensor | None) -> dict:
    g = torch.Generator().manual_seed(1000 * cell["seed"] + 2)
    rows = Rows(GAUSS["heads"], g, pool)
    L, H, dh = rows.shape
    K, n = cell["K"], cell["n"]
    planted = set(torch.randperm(L * H, generator=g)[:K].tolist())
    sd = rows.std()  # (L, H, dh)
    delta = torch.zeros(L, H, dh)
    dirs = {}
    for flat in planted:
        lay, h = divmod(flat, H)
        v = torch.ones(dh) if cell["pattern"] == "mean" else torch.randn(dh, generator=g)
        v = v / v.norm()
        sigma = float((sd[lay, h] ** 2 @ v ** 2).sqrt())  # std along v (units taken as uncorrelated)
        if pool is not None:
            sigma = float((pool[:, lay, h] @ v).std())
        delta[lay, h] = cell["shift"] * sigma * v
        dirs[flat] = v
    neg, pos = rows(n), rows(n) + delta
    names = [f"blocks.{lay}.attn.hook_z" for lay in range(L)]
    P = {name: pos[:, i] for i, name in enumerate(names)}
    N = {name: neg[:, i] for i, name in enumerate(names)}
    sadi = Sadi.from_activations(P, N, k=K)
    sadi_sel = {lay * H + h for lay, h in sadi.selected()}
    iti = Iti.from_activations(P, N, k=K, seed=cell["seed"])
    heads = iti.report.heads.tolist()
    iti_sel = {lay * H + h for lay, h in heads}
    iti_cos = [cos(iti.report.directions[i], dirs[lay * H + h]) for i, (lay, h) in enumerate(heads) if lay * H + h in dirs]
    # ceiling: heads ranked by Hotelling's T^2 with the base's own covariance (an oracle): the most powerful
    # invariant test of "this head's mean moved", whatever the direction
    diff = (pos.mean(0) - neg.mean(0)).reshape(L * H, dh)
    prec = rows.head_precision().reshape(L * H, dh, dh)
    t2 = torch.einsum("hi,hij,hj->h", diff.double(), prec, diff.double())
    ceil_sel = set(torch.sort(t2, descending=True, stable=True).indices[:K].tolist())
    trace_h = rows.trace_along((2,))  # (L, H)
    cos_ceiling = [noise_ceiling(float(delta[divmod(f, H)].norm()), float(trace_h[divmod(f, H)]), n, n) for f in planted]
    return {"sadi_recall": recall(sadi_sel, planted), "iti_recall": recall(iti_sel, planted),
            "ceiling_recall": recall(ceil_sel, planted), "chance_recall": K / (L * H),
            "iti_cos": sum(iti_cos) / len(iti_cos) if iti_cos else float("nan"),
            "cos_ceiling": sum(cos_ceiling) / len(cos_ceiling)}


def neurons_cell(cell: dict, pool: torch.Tensor | None) -> dict:
    g = torch.Generator().manual_seed(1000 * cell["seed"] + 3)
    rows = Rows(GAUSS["neurons"], g, pool)
    N_units = rows.shape[0]
    K, n = cell["K"], cell["n"]
    planted = set(torch.randperm(N_units, generator=g)[:K].tolist())
    delta = torch.zeros(N_units)
    idx = torch.tensor(sorted(planted))
    delta[idx] = cell["shift"] * rows.std()[idx]
    neg, pos = rows(n), rows(n) + delta
    name = "blocks.0.mlp.hook_post"
    sadi = Sadi.from_activations({name: pos}, {name: neg}, k=K)
    sadi_sel = {e for _, e in sadi.selected()}
    diff = pos.mean(0) - neg.mean(0)
    se = (pos.var(0) / n + neg.var(0) / n).sqrt().clamp_min(1e-8)
    ceil_sel = set(torch.sort(diff / se, descending=True, stable=True).indices[:K].tolist())
    return {"sadi_recall": recall(sadi_sel, planted), "ceiling_recall": recall(ceil_sel, planted),
            "chance_recall": K / N_units}


SUITES = {"direction": direction_cell, "heads": heads_cell, "neurons": neurons_cell}


def table(rows: list[dict]) -> str:
    out = []
    for suite, cols in (("direction", ("caa_cos", "pca_cos", "ceiling", "first_order")),
                        ("heads", ("sadi_recall", "iti_recall", "ceiling_recall", "chance_recall", "iti_cos", "cos_ceiling")),
                        ("neurons", ("sadi_recall", "ceiling_recall", "chance_recall"))):
        rs = [r for r in rows if r["suite"] == suite]
        if not rs:
            continue
        keys = ("base", "n", "shift") + (("K", "pattern") if suite == "heads" else ("K",) if suite == "neurons"
                                         else ("pairing",))
        groups: dict[tuple, list[dict]] = {}
        for r in rs:
            groups.setdefault(tuple(r[k] for k in keys), []).append(r)
        out.append(f"**{suite}**\n")
        out.append("| " + " | ".join(keys + ("seeds",) + cols) + " |")
        out.append("|" + "---|" * (len(keys) + 1 + len(cols)))
        for key, grp in sorted(groups.items(), key=lambda kv: kv[0]):
            def m(c: str, grp: list[dict] = grp) -> str:
                vals = [r[c] for r in grp if not math.isnan(r[c])]
                return f"{sum(vals) / len(vals):.3f}" if vals else "n/a"
            out.append("| " + " | ".join(str(x) for x in key) + f" | {len(grp)} | " + " | ".join(m(c) for c in cols) + " |")
        out.append("")
    return "\n".join(out)


def plot(rows: list[dict], path: Path) -> None:
    """One panel per suite: each method's score against its ceiling, per cell (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("direction", "direction cosine with u", (("caa_cos", "CAA"), ("pca_cos", "PCA")), "ceiling"),
              ("heads", "recall@K of planted heads", (("sadi_recall", "SADI-HEAD"), ("iti_recall", "ITI")), "ceiling_recall"),
              ("neurons", "recall@K of planted units", (("sadi_recall", "SADI-NEURON"),), "ceiling_recall"))
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    markers = {"gaussian": "o", "smollm2": "s", "gemma3": "^"}
    for ax, (suite, title, methods, ceil) in zip(axes, panels, strict=True):
        rs = [r for r in rows if r["suite"] == suite]
        for i, (col, label) in enumerate(methods):
            for base in markers:
                sub = [r for r in rs if r["base"] == base]
                if not sub:
                    continue
                ax.scatter([r[ceil] for r in sub], [r[col] for r in sub], marker=markers[base], s=20, alpha=0.7,
                           color=plt.cm.tab10(i), label=label if base == "gaussian" else None)
        ax.plot([-1, 1], [-1, 1], color="grey", lw=0.8)
        lo = min([r[c] for r in rs for c, _ in methods if not math.isnan(r[c])] + [0.0]) - 0.05
        ax.set_xlim(lo, 1.02)
        ax.set_ylim(lo, 1.02)
        ax.set(xlabel="ceiling", ylabel=title, title=suite)
        ax.legend(fontsize=7, loc="upper left")
    fig.text(0.01, 0.01, "o Gaussian base   s SmolLM2 activations   ^ Gemma-3 activations; "
             "heads: both planted patterns", fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/planted_methods")
    ap.add_argument("--base", nargs="+", default=["gaussian"], choices=["gaussian", *MODELS])
    ap.add_argument("--suite", nargs="+", default=list(SUITES), choices=list(SUITES))
    ap.add_argument("--n", nargs="+", type=int, default=[100, 200, 1000])
    ap.add_argument("--shift", nargs="+", type=float, default=[0.5, 1.0, 3.0], help="in units of the base's std")
    ap.add_argument("--K", nargs="+", type=int, default=[4], help="planted heads / units")
    ap.add_argument("--pattern", nargs="+", default=["mean", "random"], choices=["mean", "random"])
    ap.add_argument("--pairing", nargs="+", default=list(PAIR_NOISE), choices=list(PAIR_NOISE))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--pool", type=int, default=12_000, help="rows of real activations per real base")
    ap.add_argument("--quick", action="store_true", help="Gaussian, n 200, shift 3, one seed (the tests)")
    args = ap.parse_args(argv)
    if args.quick:
        args.base, args.n, args.shift, args.seeds = ["gaussian"], [200], [3.0], [0]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done_file = out / "cells.jsonl"
    rows = [json.loads(x) for x in done_file.read_text().splitlines()] if done_file.exists() else []
    cell_keys = ("suite", "base", "n", "shift", "K", "pattern", "pairing", "seed")
    done = {tuple(r.get(k) for k in cell_keys) for r in rows}
    for base in args.base:
        pools = None
        for suite, n, shift, seed in itertools.product(args.suite, args.n, args.shift, args.seeds):
            Ks = args.K if suite != "direction" else [None]
            patterns = args.pattern if suite == "heads" else args.pairing if suite == "direction" else [None]
            for K, pattern in itertools.product(Ks, patterns):
                cell = {"suite": suite, "base": base, "n": n, "shift": shift, "K": K, "seed": seed,
                        "pattern" if suite != "direction" else "pairing": pattern}
                if tuple(cell.get(k) for k in cell_keys) in done:
                    continue
                if base != "gaussian" and pools is None:
                    pools = real_pools(MODELS[base], args.pool)
                t0 = time.perf_counter()
                r = {**cell, **SUITES[suite](cell, None if pools is None else pools[suite]),
                     "seconds": time.perf_counter() - t0}
                with done_file.open("a") as f:
                    f.write(json.dumps(r) + "\n")
                rows.append(r)
                done.add(tuple(cell.get(k) for k in cell_keys))
                print(f"[planted_methods] {r}", flush=True)
    md = table(rows)
    (out / "planted_methods.md").write_text(md + "\n")
    if rows:
        plot(rows, out / "planted_methods.png")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
