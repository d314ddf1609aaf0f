"""PCA / RepE reading vectors (Zou et al., "Representation Engineering", 2023): the first principal component of
paired activation differences.

Fitting, per hook: ``d_i = a(positive_i) - a(negative_i)`` for each contrast pair, each difference multiplied by a
seeded random sign (RepE shuffles the order inside each pair, so that the component captures the axis, not the
mean), centred, and the first principal component ``u`` taken (SVD). ``u`` is sign-aligned to the mean difference
``m = mean(d_i)`` and scaled by ``|m . u|``, so that strength 1 moves an activation as far along ``u`` as CAA's
vector does.

Update rule (applied by [`SteeringVectors`][tl_steer.methods.vector.SteeringVectors]): ``a' = a + strength * |m . u| * u``.

Differences from the reference code (``andyzoujm/representation-engineering``, ``rep_readers.PCARepReader``):
the reference reads several layers and picks the sign by which side scores higher on held-out pairs; here one
sign rule (agreement with the mean difference) and the sites you name. Pairs must be aligned (``positive[i]``
goes with ``negative[i]``).
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from .._typecheck import typed
from ..errors import SteeringError
from ..registry import FitContext, FitOptions, MethodSpec, check_pairs, is_paired, pooled, site_norms
from ..sites import Site, hook_name
from .vector import SteeringVectors

NAME = "pca"


@typed
def first_component(
    diffs: Float[Tensor, "n d"], generator: torch.Generator
) -> Float[Tensor, "d"]:
    """RepE's direction: PC1 of sign-randomised, centred differences, sign-aligned and scaled to the mean difference."""
    signs = torch.randint(0, 2, (diffs.shape[0], 1), generator=generator).to(diffs) * 2 - 1
    flipped = diffs * signs
    centred = flipped - flipped.mean(0, keepdim=True)
    u = torch.linalg.svd(centred.double(), full_matrices=False).Vh[0].to(diffs.dtype)
    m = diffs.mean(0)
    proj = torch.dot(m, u)
    return u * proj  # = sign(m.u) * |m.u| * u


def pca_from_activations(
    positive: dict[str, Tensor], negative: dict[str, Tensor], strength: float = 1.0, seed: int = 0
) -> SteeringVectors:
    """``{name: PC1 direction}`` as [`SteeringVectors`][tl_steer.methods.vector.SteeringVectors] from aligned pairs ``(n, *feature)`` per hook."""
    check_pairs(positive, negative, "pca")
    g = torch.Generator().manual_seed(int(seed))
    vectors: dict[str, Tensor] = {}
    for name in positive:
        p, n = positive[name].float(), negative[name].float()
        if p.shape[0] != n.shape[0] or p.shape[0] < 2:
            raise SteeringError(
                f"pca needs at least 2 aligned pairs at {name!r} (positive[i] with negative[i]); got "
                f"{p.shape[0]} positive and {n.shape[0]} negative rows. A mean-difference vector does not need pairs."
            )
        diffs = (p - n).reshape(p.shape[0], -1)
        vectors[name] = first_component(diffs, g).reshape(p.shape[1:])
    return SteeringVectors(vectors, strength, NAME, site_norms(positive, negative))


def _fit(positive: Any, negative: Any, opts: FitOptions, ctx: FitContext) -> SteeringVectors:
    if not is_paired(positive, negative, ctx):
        raise SteeringError("pca needs paired contrast sets (as many positive as negative texts, aligned)")
    return pca_from_activations(pooled(positive), pooled(negative), seed=opts.seed)


SPEC = MethodSpec(
    name=NAME,
    summary="PCA/RepE: a + s*v, v = first principal component of paired differences (sign and scale from CAA)",
    cls=SteeringVectors,
    reads=lambda model, opts: [hook_name(opts.layer_of(model.cfg.n_layers), opts.site or Site.RESID_PRE)],
    fit=_fit,
    strength="s scales the component (1 = the mean difference's length along it)",
    default_positions="all",
    grid=(1.0, 2.0, 4.0, 8.0),
    aliases=("repe",),
)
