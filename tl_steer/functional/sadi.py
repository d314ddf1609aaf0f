"""Pure tensor math of SADI (Wang, Yang & Peng, ICLR 2025): element scores, the global top-K mask, the edit.

* score of an element = mean activation difference (positive − negative) at the last answer token; for attention
  heads (``hook_z``, shape ``(head, d_head)``) the score is the mean of that difference over ``d_head``;
* mask = the K elements with the largest signed score over *all* layers (ties: lower flat index first);
* edit = ``a + delta * (M ⊙ a)``: the steering vector ``delta * (M ⊙ a)`` is computed from the input's own activation.
"""

from __future__ import annotations

from typing import Literal

import einops
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from .._typecheck import typed
from ..errors import SteeringError

Select = Literal["top", "bottom", "abs"]


@typed
def head_scores(diff: Float[Tensor, "n_heads d_head"]) -> Float[Tensor, "n_heads"]:
    """A head's score: its mean activation difference averaged over its ``d_head`` units."""
    return einops.reduce(diff, "n_heads d_head -> n_heads", "mean")


@typed
def top_k_mask(scores: Float[Tensor, "layer element"], k: int, select: Select | str = "top") -> Bool[Tensor, "layer element"]:
    """Binary mask with exactly ``k`` ones: the ``k`` largest scores across all layers.

    ``select="top"`` ranks by signed score (SADI), ``"bottom"`` by its negation, ``"abs"`` by magnitude. Ties go to
    the lower flat index (layer-major), so the mask is deterministic.
    """
    n = scores.numel()
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n:
        raise SteeringError(f"k must be an int in [1, {n}] (layers x elements = {tuple(scores.shape)}), got {k!r}")
    if not bool(torch.isfinite(scores).all()):
        raise SteeringError("SADI scores contain NaN or inf; check the collected activations")
    flat = scores.flatten()
    if select == "top":
        key = flat
    elif select == "bottom":
        key = -flat
    elif select == "abs":
        key = flat.abs()
    else:
        raise SteeringError(f"select must be 'top', 'bottom' or 'abs', got {select!r}")
    order = torch.sort(key, descending=True, stable=True).indices
    mask = torch.zeros(n, dtype=torch.bool, device=scores.device)
    mask[order[:k]] = True
    return mask.reshape(scores.shape)


@typed
def expand_head_mask(mask: Bool[Tensor, "n_heads"], d_head: int) -> Bool[Tensor, "n_heads d_head"]:
    """Element mask over heads -> mask over each head's whole ``d_head`` slice."""
    return einops.repeat(mask, "n_heads -> n_heads d_head", d_head=d_head)


@typed
def sadi_edit(
    activation: Float[Tensor, "batch pos *feature"], mask: Bool[Tensor, "*feature"] | Float[Tensor, "*feature"],
    delta: float | Tensor,
) -> Float[Tensor, "batch pos *feature"]:
    """``a + delta * (M ⊙ a)``, out of place, in the activation's dtype and device. A 0/1 ``mask`` already in the
    activation's dtype and device (what the hooks hold) is used as is."""
    m = mask if (mask.dtype == activation.dtype and mask.device == activation.device) else mask.to(
        device=activation.device, dtype=activation.dtype)
    return activation + delta * (m * activation)


@typed
def sadi_scale(mask: Bool[Tensor, "*feature"], delta: float) -> Float[Tensor, "*feature"]:
    """The reference's per-element factor: ``1 + delta`` (its ``s``) on the mask, 1 elsewhere."""
    return 1.0 + delta * mask.float()


@typed
def frozen_edit(
    activation: Float[Tensor, "batch pos *feature"], clean: Float[Tensor, "batch *feature"],
    scale: Float[Tensor, "*feature"],
) -> Float[Tensor, "batch pos *feature"]:
    """Every position replaced by ``scale ⊙ clean`` (the reference's frozen-clean patch; a position scope then keeps
    only the edited position). Out of place, in the activation's dtype and device."""
    value = (clean.to(activation.device, torch.float32) * scale.to(activation.device)).to(activation.dtype)
    return value.unsqueeze(1).expand_as(activation)


def neuron_activation(pre: Tensor, act_fn: str) -> Tensor:
    """``act_fn(pre)``: the MLP activation function's output (the reference's "neurons", e.g. ``silu(gate)``) from
    TransformerLens' ``mlp.hook_pre`` (the gate's pre-activation)."""
    from transformers.activations import ACT2FN

    if act_fn not in ACT2FN:
        raise SteeringError(f"unknown MLP activation function {act_fn!r}; expected one of transformers' ACT2FN names")
    return ACT2FN[act_fn](pre.float())
