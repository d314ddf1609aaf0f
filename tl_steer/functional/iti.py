"""Pure tensor math of ITI (Li et al., 2023): batched per-head logistic probes, mass-mean directions, projection std.

Probes are fitted by Newton's method (IRLS) with an L2 penalty on standardised features, all probes at once; the
solution is unique and starts from zero, so the fit is deterministic (the only randomness is the train/val split,
chosen by the caller).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from .._typecheck import typed


@typed
def fit_logistic_probes(
    x: Float[Tensor, "probe n d"], y: Float[Tensor, "n"], l2: float = 1.0, steps: int = 25
) -> tuple[Float[Tensor, "probe d"], Float[Tensor, "probe"], Float[Tensor, "probe d"], Float[Tensor, "probe d"]]:
    """Fit one L2-regularised logistic regression per probe; returns ``(w, b, mean, std)`` of standardised inputs.

    Predict with ``sigmoid(((x - mean) / std) @ w + b)`` (see [`probe_accuracy()`][tl_steer.functional.iti.probe_accuracy]).
    """
    x64 = x.double()
    mean = x64.mean(1, keepdim=True)
    std = x64.std(1, keepdim=True, unbiased=False).clamp_min(1e-6)
    xs = (x64 - mean) / std
    p, n, d = xs.shape
    xa = torch.cat([xs, torch.ones(p, n, 1, dtype=xs.dtype)], dim=2)  # bias column
    theta = torch.zeros(p, d + 1, dtype=xs.dtype)
    yy = y.double()[None, :]
    reg = torch.full((d + 1,), l2, dtype=xs.dtype)
    reg[-1] = 0.0  # bias is not penalised
    for _ in range(steps):
        prob = torch.sigmoid(torch.einsum("pnd,pd->pn", xa, theta))
        grad = torch.einsum("pnd,pn->pd", xa, prob - yy) + reg * theta
        wgt = (prob * (1 - prob)).clamp_min(1e-10)
        hess = torch.einsum("pnd,pn,pne->pde", xa, wgt, xa) + torch.diag(reg + 1e-8)
        # The Hessian is symmetric positive definite: a Cholesky solve. (Batched LU solves of (d_head+1)-square
        # systems fail for d_head >= 192 in torch 2.13's CPU build with MKL: "Pivots given to lu_solve must all be
        # greater or equal to 1".)
        step = torch.cholesky_solve(grad.unsqueeze(-1), torch.linalg.cholesky(hess)).squeeze(-1)
        theta = theta - step
        if float(step.abs().max()) < 1e-9:
            break
    w, b = theta[:, :d], theta[:, d]
    return w.float(), b.float(), mean.squeeze(1).float(), std.squeeze(1).float()


@typed
def probe_accuracy(
    x: Float[Tensor, "probe n d"], y: Float[Tensor, "n"], w: Float[Tensor, "probe d"], b: Float[Tensor, "probe"],
    mean: Float[Tensor, "probe d"], std: Float[Tensor, "probe d"],
) -> Float[Tensor, "probe"]:
    """Accuracy of each probe on ``(x, y)`` (threshold 0.5)."""
    logits = torch.einsum("pnd,pd->pn", (x - mean[:, None]) / std[:, None], w) + b[:, None]
    return ((logits > 0).float() == y[None, :]).float().mean(1)


@typed
def mass_mean_directions(
    pos: Float[Tensor, "n_pos probe d"], neg: Float[Tensor, "n_neg probe d"]
) -> Float[Tensor, "probe d"]:
    """Unit vector from the negative class mean to the positive class mean, per probe."""
    diff = pos.mean(0) - neg.mean(0)
    return diff / diff.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@typed
def projection_std(acts: Float[Tensor, "n probe d"], directions: Float[Tensor, "probe d"]) -> Float[Tensor, "probe"]:
    """Standard deviation of the activations projected on each probe's direction."""
    proj = torch.einsum("npd,pd->np", acts, directions)
    return proj.std(0, unbiased=True) if acts.shape[0] > 1 else torch.zeros_like(proj[0])
