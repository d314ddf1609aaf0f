"""Pure tensor math of MAT-Steer (Nguyen et al., "Multi-Attribute Steering of Language Models via Targeted
Interventions", ACL 2025, arXiv 2502.12446).

Shapes use a *group* axis ``g`` so that one code path covers both feature layouts of
[`tl_steer.methods.mat_steer.MatSteer`][tl_steer.methods.mat_steer.MatSteer]: a flat feature (``g == 1``, ``d`` = the whole feature, e.g.
``d_model`` or ``n_heads * d_head``) and per-head features (``g == n_heads``, ``d == d_head``, every head with its
own independent parameters).

Update rule, per group and token ``a``::

    g_t(a) = sigmoid(w_t . a + b_t)                     (gate of attribute t)
    a'     = a + coef * sum_t g_t(a) theta_t
    a'     = a' * ||a|| / ||a'||                        (when rescale)
"""

from __future__ import annotations

import math
from typing import Any

import einops
import torch
from jaxtyping import Float
from torch import Tensor

from .._typecheck import typed


@typed
def gates(
    x: Float[Tensor, "rows g d"], w: Float[Tensor, "attr g d"], b: Float[Tensor, "attr g"]
) -> Float[Tensor, "rows g attr"]:
    """``sigmoid(w_t . x + b_t)`` for every row, group and attribute."""
    logits = einops.einsum(x, w, "rows g d, attr g d -> rows g attr")
    return torch.sigmoid(logits + einops.rearrange(b, "attr g -> g attr"))


@typed
def edit(
    x: Float[Tensor, "rows g d"],
    theta: Float[Tensor, "attr g d"],
    w: Float[Tensor, "attr g d"],
    b: Float[Tensor, "attr g"],
    coef: float | Tensor = 1.0,
    rescale: bool = True,
    eps: float = 1e-8,
) -> Float[Tensor, "rows g d"]:
    """``x + coef * sum_t g_t(x) theta_t``, optionally rescaled to ``||x||`` per row and group. Out of place.
    ``coef``: a number, or ``(rows, 1, 1)`` per-row strengths."""
    g = gates(x, w, b)
    delta = einops.einsum(g, theta, "rows g attr, attr g d -> rows g d")
    out = x + coef * delta
    if rescale:
        ref = x.norm(dim=-1, keepdim=True)
        out = out * (ref / out.norm(dim=-1, keepdim=True).clamp_min(eps))
    return out


@typed
def sq_dists(x: Float[Tensor, "*batch n d"], y: Float[Tensor, "*batch m d"]) -> Float[Tensor, "*batch n m"]:
    """Squared Euclidean distances, ``>= 0`` and differentiable everywhere (also at zero distance)."""
    xx = (x * x).sum(-1)[..., :, None]
    yy = (y * y).sum(-1)[..., None, :]
    xy = einops.einsum(x, y, "... n d, ... m d -> ... n m")
    return (xx + yy - 2 * xy).clamp_min(0.0)


@typed
def kernel(sq: Float[Tensor, "*batch n m"], sigmas: Float[Tensor, "*bw k"]) -> Float[Tensor, "*batch n m"]:
    """Mean over bandwidths ``sigma_k`` of ``exp(-sq / (2 sigma_k^2))``.

    ``sigmas`` broadcasts against the leading axes of ``sq`` (e.g. ``(g, k)`` against ``(attr, g, n, m)``).
    """
    s = sigmas[..., None, None, :]  # (*bw, 1, 1, k)
    return torch.exp(-sq[..., None] / (2 * s * s)).mean(-1)


@typed
def mmd2(
    x: Float[Tensor, "*batch n d"], y: Float[Tensor, "*batch m d"], sigmas: Float[Tensor, "*bw k"]
) -> Float[Tensor, "*batch"]:
    """Biased (V-statistic) squared MMD between the samples ``x`` and ``y`` (as in the paper's code)."""
    kxx = kernel(sq_dists(x, x), sigmas).mean((-2, -1))
    kyy = kernel(sq_dists(y, y), sigmas).mean((-2, -1))
    kxy = kernel(sq_dists(x, y), sigmas).mean((-2, -1))
    return kxx + kyy - 2 * kxy


@typed
def orthogonality(theta: Float[Tensor, "attr g d"], eps: float = 1e-12) -> Float[Tensor, "g"]:
    """``sum_{i<j} cos^2(theta_i, theta_j)`` per group (0 for a single attribute)."""
    unit = theta / theta.norm(dim=-1, keepdim=True).clamp_min(eps)
    cos = einops.einsum(unit, unit, "i g d, j g d -> g i j")
    upper = torch.triu(torch.ones(theta.shape[0], theta.shape[0], dtype=torch.bool, device=theta.device), 1)
    return (cos * cos * upper).sum((-2, -1))


@typed
def median_distance(
    x: Float[Tensor, "n g d"], max_rows: int = 512, generator: torch.Generator | None = None
) -> Float[Tensor, "g"]:
    """Median pairwise distance per group on at most ``max_rows`` random rows (the median heuristic)."""
    if x.shape[0] > max_rows:
        idx = torch.randperm(x.shape[0], generator=generator)[:max_rows].to(x.device)
        x = x[idx]
    xg = einops.rearrange(x, "n g d -> g n d")
    d = sq_dists(xg, xg).sqrt()
    n = xg.shape[1]
    off = ~torch.eye(n, dtype=torch.bool, device=x.device)
    return d[:, off].median(dim=-1).values.clamp_min(1e-6)


@typed
def losses(
    pos: Float[Tensor, "attr n g d"],
    neg: Float[Tensor, "attr n g d"],
    theta: Float[Tensor, "attr g d"],
    w: Float[Tensor, "attr g d"],
    b: Float[Tensor, "attr g"],
    sigmas: Float[Tensor, "g k"],
    rescale: bool = True,
) -> dict[str, Tensor]:
    """The four MAT-Steer loss terms on one mini-batch (``pos[t]``, ``neg[t]``: desirable / undesirable rows of
    attribute ``t``). Also returns the mean distance between positives and edited negatives (a diagnostic).

    * ``mmd``: mean over attributes and groups of MMD^2(pos_t, edit(neg_t)) (every attribute's gate acts);
    * ``preserve``: mean of g^2 on positives (leave desirable tokens alone);
    * ``sparse``: mean of g on negatives (few attributes fire per token);
    * ``ortho``: sum_{i<j} cos^2(theta_i, theta_j), averaged over groups.
    """
    n_attr, n = neg.shape[0], neg.shape[1]
    flat_neg = einops.rearrange(neg, "attr n g d -> (attr n) g d")
    flat_pos = einops.rearrange(pos, "attr n g d -> (attr n) g d")
    edited = einops.rearrange(edit(flat_neg, theta, w, b, 1.0, rescale), "(attr n) g d -> attr g n d", attr=n_attr, n=n)
    p = einops.rearrange(pos, "attr n g d -> attr g n d")
    mmd = mmd2(p, edited, sigmas).mean()
    g_pos = gates(flat_pos, w, b)
    g_neg = gates(flat_neg, w, b)
    with torch.no_grad():
        pair = sq_dists(p, edited).sqrt().mean()
    return {
        "mmd": mmd,
        "preserve": (g_pos * g_pos).mean(),
        "sparse": g_neg.mean(),
        "ortho": orthogonality(theta).mean(),
        "pair_dist": pair,
    }


# ---------------------------------------------------------------------------------------------- fitting steps
# MatSteer.fit composes these; each is pure given its generator.

MULTISCALE = (0.25, 0.5, 1.0, 2.0, 4.0)


def split_train_val(
    x: Float[Tensor, "n g d"], val_fraction: float, generator: torch.Generator
) -> tuple[Float[Tensor, "n_train g d"], Float[Tensor, "n_val g d"]]:
    """Seeded random split; the validation part is empty when it would leave fewer than 2 training rows."""
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    n_val = int(math.floor(val_fraction * x.shape[0]))
    n_val = n_val if x.shape[0] - n_val >= 2 else 0
    return x[perm[n_val:]], x[perm[:n_val]]


def bandwidths(
    rows: Float[Tensor, "n g d"], kernel: str, sigma: float, generator: torch.Generator
) -> Float[Tensor, "g k"]:
    """Kernel bandwidths per group: ``sigma`` (gaussian), the median pairwise distance (median), or 0.25..4 x that
    median (multiscale)."""
    med = median_distance(rows, generator=generator)
    if kernel == "gaussian":
        return torch.full((rows.shape[1], 1), float(sigma), device=rows.device)
    if kernel == "median":
        return med[:, None]
    return med[:, None] * torch.tensor(MULTISCALE, device=rows.device)


def init_params(
    n_attr: int, mean_diffs: Float[Tensor, "attr g d"], init: str, generator: torch.Generator
) -> tuple[Float[Tensor, "attr g d"], Float[Tensor, "attr g d"], Float[Tensor, "attr g"]]:
    """Initial ``(theta, w, b)`` in optimiser coordinates: theta ~ N(0, 1) (``random``, the reference) or the
    per-attribute mean difference (``mean_diff``); gates like ``nn.Linear`` (uniform in +-1/sqrt(d))."""
    _, g, d = mean_diffs.shape
    bound = 1.0 / math.sqrt(d)
    theta = torch.randn(n_attr, g, d, generator=generator) if init == "random" else mean_diffs.detach().cpu().clone()
    w = (torch.rand(n_attr, g, d, generator=generator) * 2 - 1) * bound
    b = (torch.rand(n_attr, g, generator=generator) * 2 - 1) * bound
    dev = mean_diffs.device
    return theta.to(dev), w.to(dev), b.to(dev)


def probe_gates(
    groups_pos: list[Float[Tensor, "n g d"]], groups_neg: list[Float[Tensor, "n g d"]], logit: float = 2.0,
    rest: str = "mean",
) -> tuple[Float[Tensor, "attr g d"], Float[Tensor, "attr g"]]:
    """Gates that start as mean-difference probes (in whatever coordinates the rows are given).

    Gate ``t`` should open on attribute ``t``'s negative (undesirable) rows and stay shut on every other row: the
    positives of every attribute and the other attributes' negatives. Its direction is

    * ``rest="mean"``: ``mean(negative_t)`` minus the mean of the other groups (each group weighted equally): one
      vs rest;
    * ``rest="span"``: attribute ``t``'s shift ``mean(negative_t) - mean(positives)`` with the other attributes'
      shifts projected out, so that their negatives project where the positives do (the dual basis of the shifts:
      it tells correlated attributes apart, at some cost in separation from the positives).

    Its threshold is halfway between ``negative_t``'s mean projection and the *highest* mean projection of another
    group, and its scale puts the logit at ``+logit`` on ``negative_t``'s mean and ``-logit`` on that nearest other
    group."""
    means_pos = torch.stack([x.mean(0) for x in groups_pos])  # (attr, g, d)
    means_neg = torch.stack([x.mean(0) for x in groups_neg])
    n_attr = means_neg.shape[0]
    shifts = means_neg - means_pos.mean(0)  # (attr, g, d)
    ws, bs = [], []
    for t in range(n_attr):
        others = [s for s in range(n_attr) if s != t]
        rest_means = torch.cat([means_pos, means_neg[others]])  # (groups, g, d)
        if rest == "mean":
            direction = means_neg[t] - rest_means.mean(0)  # (g, d)
        elif rest == "span":
            direction = shifts[t]
            if others:
                basis = torch.linalg.qr(shifts[others].permute(1, 2, 0)).Q  # (g, d, attr-1), orthonormal columns
                direction = direction - einops.einsum(basis, einops.einsum(basis, direction, "g d k, g d -> g k"),
                                                      "g d k, g k -> g d")
        else:
            raise ValueError(f"rest must be 'mean' or 'span', got {rest!r}")
        unit = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        own = (means_neg[t] * unit).sum(-1)  # (g,)
        nearest = (rest_means * unit).sum(-1).amax(0)  # (g,)
        gap = (own - nearest).clamp_min(1e-6)
        k = 2 * logit / gap
        ws.append(unit * k[:, None])
        bs.append(-k * (own + nearest) / 2)
    return torch.stack(ws), torch.stack(bs)


def to_native(
    theta: Float[Tensor, "attr g d"], w: Float[Tensor, "attr g d"], b: Float[Tensor, "attr g"],
    mu: Float[Tensor, "g d"], scale: Float[Tensor, "g d"],
) -> tuple[Float[Tensor, "attr g d"], Float[Tensor, "attr g d"], Float[Tensor, "attr g"]]:
    """Standardised coordinates -> the paper's: ``w = w~/s``, ``b = b~ - w.mu``, ``theta = s * theta~``."""
    w_n = w / scale
    return theta * scale, w_n, b - einops.einsum(w_n, mu, "attr g d, g d -> attr g")


def total_loss(parts: dict[str, Tensor], lambdas: tuple[float, float, float]) -> Tensor:
    """``mmd + l1 * preserve + l2 * sparse + l3 * ortho``."""
    l1, l2, l3 = lambdas
    return parts["mmd"] + l1 * parts["preserve"] + l2 * parts["sparse"] + l3 * parts["ortho"]


def epoch_batches(
    sizes: list[int], batch_size: int, steps: int, generator: torch.Generator
) -> list[Tensor]:
    """Per set, ``steps * batch_size`` indices cycling through fresh permutations of ``range(n)``."""
    out = []
    for n in sizes:
        reps = math.ceil(steps * batch_size / n)
        out.append(torch.cat([torch.randperm(n, generator=generator) for _ in range(reps)])[: steps * batch_size])
    return out


TERMS = ("loss", "mmd", "preserve", "sparse", "ortho", "pair_dist")


def run_epoch(
    pos: list[Tensor], neg: list[Tensor], params: tuple[Tensor, Tensor, Tensor], native: Any,
    opt: torch.optim.Optimizer, sigmas: Tensor, lambdas: tuple[float, float, float], rescale: bool,
    batch_size: int, steps: int, generator: torch.Generator,
) -> dict[str, float]:
    """One epoch of Adam steps (gradients zeroed every step); returns the mean of every loss term."""
    dev = pos[0].device
    idx_pos = [i.to(dev) for i in epoch_batches([x.shape[0] for x in pos], batch_size, steps, generator)]
    idx_neg = [i.to(dev) for i in epoch_batches([x.shape[0] for x in neg], batch_size, steps, generator)]
    sums = dict.fromkeys(TERMS, 0.0)
    for s in range(steps):
        sl = slice(s * batch_size, (s + 1) * batch_size)
        p = torch.stack([x[i[sl]] for x, i in zip(pos, idx_pos, strict=True)])
        n = torch.stack([x[i[sl]] for x, i in zip(neg, idx_neg, strict=True)])
        opt.zero_grad(set_to_none=True)
        parts = losses(p, n, *native(*params), sigmas, rescale)
        loss = total_loss(parts, lambdas)
        loss.backward()
        opt.step()
        sums["loss"] += float(loss.detach())
        for k in TERMS[1:]:
            sums[k] += float(parts[k].detach())
    return {k: v / steps for k, v in sums.items()}


@torch.no_grad()
def evaluate(
    pos: list[Tensor], neg: list[Tensor], native_params: tuple[Tensor, Tensor, Tensor], sigmas: Tensor,
    lambdas: tuple[float, float, float], rescale: bool, batch_size: int,
) -> dict[str, float]:
    """Mean total loss and MMD over deterministic batches of held-out sets."""
    bs = min(batch_size, *(x.shape[0] for x in pos + neg))
    steps = math.ceil(max(x.shape[0] for x in pos + neg) / bs)
    loss = mmd = 0.0
    for s in range(steps):
        idx = torch.arange(s * bs, (s + 1) * bs)
        p = torch.stack([x[(idx % x.shape[0]).to(x.device)] for x in pos])
        n = torch.stack([x[(idx % x.shape[0]).to(x.device)] for x in neg])
        parts = losses(p, n, *native_params, sigmas, rescale)
        loss += float(total_loss(parts, lambdas))
        mmd += float(parts["mmd"])
    return {"val_loss": loss / steps, "val_mmd": mmd / steps}
