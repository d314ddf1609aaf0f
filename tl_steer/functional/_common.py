"""Shared pure tensor math."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

from .._typecheck import typed


@typed
def add_scaled(
    activation: Float[Tensor, "batch pos *feature"], vector: Float[Tensor, "*feature"], coef: float
) -> Float[Tensor, "batch pos *feature"]:
    """``activation + coef * vector``, out of place, in the activation's dtype and device."""
    return activation + coef * vector.to(dtype=activation.dtype, device=activation.device)


@typed
def rescale_to_norm(
    edited: Float[Tensor, "*rows d"], reference: Float[Tensor, "*rows d"], eps: float = 1e-8
) -> Float[Tensor, "*rows d"]:
    """Rescale each row of ``edited`` to the L2 norm of the same row of ``reference``."""
    ref = reference.norm(dim=-1, keepdim=True)
    cur = edited.norm(dim=-1, keepdim=True).clamp_min(eps)
    return edited * (ref / cur)


@typed
def feature_flat(activation: Float[Tensor, "batch pos *feature"]) -> Float[Tensor, "batch pos d"]:
    """Flatten the feature axes: ``(batch, pos, head, d_head) -> (batch, pos, head*d_head)``."""
    return activation.reshape(activation.shape[0], activation.shape[1], -1)


def unflatten_like(flat: Tensor, like: Tensor) -> Tensor:
    """Inverse of :func:`feature_flat`."""
    return flat.reshape(like.shape)
