"""Shared pure tensor math: the pieces more than one method uses."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .._typecheck import typed
from ..errors import SteeringError


@typed
def add_scaled(
    activation: Float[Tensor, "batch pos *feature"], vector: Float[Tensor, "*feature"], coef: float | Tensor
) -> Float[Tensor, "batch pos *feature"]:
    """``activation + coef * vector``, out of place, in the activation's dtype and device (``coef``: a number, or
    a tensor that broadcasts against the activation, e.g. ``(batch, 1, 1)`` per-row strengths)."""
    return activation + coef * vector.to(dtype=activation.dtype, device=activation.device)


@typed
def mean_difference(
    positive: Float[Tensor, "n_pos *feature"], negative: Float[Tensor, "n_neg *feature"]
) -> Float[Tensor, "*feature"]:
    """``mean(positive) - mean(negative)`` over the sample axis (the mean of pairwise differences when paired)."""
    return positive.mean(0) - negative.mean(0)


def split_indices(
    n_pos: int, n_neg: int, val_fraction: float, seed: int, paired: bool
) -> tuple[Int[Tensor, "a"], Int[Tensor, "b"], Int[Tensor, "c"], Int[Tensor, "d"]]:
    """Seeded split: ``(pos_train, pos_val, neg_train, neg_val)`` index tensors; pairs stay together when ``paired``."""
    if not 0.0 < val_fraction < 1.0:
        raise SteeringError(f"val_fraction must be in (0, 1), got {val_fraction}")
    g = torch.Generator().manual_seed(int(seed))
    perm_p = torch.randperm(n_pos, generator=g)
    perm_n = perm_p.clone() if paired and n_pos == n_neg else torch.randperm(n_neg, generator=g)
    vp, vn = max(1, round(n_pos * val_fraction)), max(1, round(n_neg * val_fraction))
    if vp >= n_pos or vn >= n_neg:
        raise SteeringError(
            f"a validation split needs at least 2 texts per side; got {n_pos} positive and {n_neg} negative "
            f"with val_fraction={val_fraction}"
        )
    return perm_p[vp:], perm_p[:vp], perm_n[vn:], perm_n[:vn]
