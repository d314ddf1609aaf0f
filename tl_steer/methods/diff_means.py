"""Mean-difference steering vectors: CAA (Rimsky et al., 2024) and ActAdd (Turner et al., 2023).

Update rule (applied by [`SteeringVectors`][tl_steer.methods.vector.SteeringVectors]): ``a' = a + strength * v`` at the chosen
positions, with

* **mean difference / CAA**: ``v = mean_i a_L(pos_i) - mean_j a_L(neg_j)`` at the last token of each text. CAA's
  texts are multiple-choice prompts ending in the answer letter of the matching (positive) or non-matching
  (negative) behaviour, so "last token" is the answer letter, as in the paper. With paired sets this is the mean of
  the pairwise differences.
* **ActAdd**: ``v = a_L(positive) - a_L(negative)`` from *one* pair of prompts (e.g. "Love" − "Hate").

Differences from the reference code:

* ActAdd's reference implementation adds the whole ``(pos, d_model)`` difference of the two prompts to the *first*
  positions of the user's prompt (padding the shorter prompt). Here the difference is a single vector read at the
  last token (``read="last"``, or ``"mean"`` over tokens), added at any [`Positions`][tl_steer.core.Positions]
  scope; this is the single-vector variant most follow-up work uses.
* CAA adds the vector at every position after the instruction; ``positions="all"`` (the default of ``hooks``) adds
  it at every real token, prompt included. Pass ``positions="generated"`` or ``"last_prompt+generated"`` to restrict it.
* ``normalize=True`` rescales each vector to unit L2 norm so that ``coef`` is an absolute step size (not in CAA).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .._types import TransformerBridge
from ..collect import ReadSpec
from ..errors import SteeringError
from ..functional import mean_difference
from ..pairs import ContrastSet
from ..registry import FitOptions, MethodSpec, check_pairs, pooled, read_activations, site_norms
from ..sites import Site, hook_name
from .vector import SteeringVectors

NAME = "caa"


def _resolve_names(
    model: TransformerBridge, hook_names: Sequence[str] | str | None, layer: int | Sequence[int] | None, site: Site | str | None
) -> list[str]:
    if hook_names is not None:
        if layer is not None or site is not None:
            raise SteeringError("pass either hook_names or (layer, site), not both")
        return [hook_names] if isinstance(hook_names, str) else list(hook_names)
    if layer is None:
        raise SteeringError(
            "mean_diff needs hook_names=[...] or layer=... (with site=, default 'resid_pre'), e.g. layer=12"
        )
    layers = [layer] if isinstance(layer, int) else list(layer)
    return [hook_name(int(lay), site or Site.RESID_PRE) for lay in layers]


def mean_diff_from_activations(
    positive: dict[str, Tensor], negative: dict[str, Tensor], strength: float = 1.0, normalize: bool = False
) -> SteeringVectors:
    """``{name: mean(positive[name]) - mean(negative[name])}`` as [`SteeringVectors`][tl_steer.methods.vector.SteeringVectors] (``(n, *feature)`` each)."""
    check_pairs(positive, negative, "mean_diff")
    vectors: dict[str, Tensor] = {}
    for name in positive:
        v = mean_difference(positive[name].float(), negative[name].float())
        if normalize:
            v = v / v.norm().clamp_min(1e-12)
        vectors[name] = v
    return SteeringVectors(vectors, strength, NAME, site_norms(positive, negative))


@torch.no_grad()
def mean_diff(
    model: TransformerBridge,
    contrast: ContrastSet,
    hook_names: Sequence[str] | str | None = None,
    *,
    layer: int | Sequence[int] | None = None,
    site: Site | str | None = None,
    strength: float = 1.0,
    read: ReadSpec = "last",
    normalize: bool = False,
    batch_size: int = 8,
    progress: bool = False,
    prepend_bos: bool | None = None,
) -> SteeringVectors:
    """CAA / mean-difference vectors: ``mean(act(positive)) - mean(act(negative))`` at each hook.

    ``mean_diff(model, contrast, layer=12)`` reads ``blocks.12.hook_resid_pre`` at the last token of every text
    (``read="mean"`` averages over each text's tokens instead). Texts are tokenized by the tokenizer's own BOS rule
    (``prepend_bos=None``; [`tl_steer.collect.tokenizer_bos()`][tl_steer.collect.tokenizer_bos]), as steering-vectors,
    repeng and the papers' code do; ``prepend_bos=True`` is TransformerLens' rule.
    """
    names = _resolve_names(model, hook_names, layer, site)
    if read == "all":
        raise SteeringError("mean_diff needs one vector per text: read='last', 'mean' or a negative int")
    opts = FitOptions(read=read, read_batch_size=batch_size, progress=progress, prepend_bos=prepend_bos)
    pos, neg = read_activations(model, [contrast], names, opts)  # the one reading path of fitting
    return mean_diff_from_activations(pos[contrast.attribute], neg[contrast.attribute], strength=strength,
                                      normalize=normalize)


caa = mean_diff  #: CAA is the mean difference over A/B prompts ending in the answer letter


def actadd(
    model: TransformerBridge,
    positive: str,
    negative: str,
    hook_names: Sequence[str] | str | None = None,
    *,
    layer: int | Sequence[int] | None = None,
    site: Site | str | None = None,
    strength: float = 1.0,
    read: ReadSpec = "last",
) -> SteeringVectors:
    """ActAdd: the activation difference of a single prompt pair, e.g. ``actadd(model, "Love", "Hate", layer=6)``."""
    if not isinstance(positive, str) or not isinstance(negative, str):
        raise SteeringError("actadd takes one positive and one negative prompt (str); use mean_diff for sets")
    return mean_diff(
        model, ContrastSet("actadd", (positive,), (negative,)), hook_names, layer=layer, site=site,
        strength=strength, read=read, batch_size=1,
    )


def _reads(model: TransformerBridge, opts: FitOptions) -> list[str]:
    return [hook_name(opts.layer_of(model.cfg.n_layers), opts.site or Site.RESID_PRE)]


SPEC = MethodSpec(
    name=NAME,
    summary="CAA / mean difference: a + s*v, v = mean(positive) - mean(negative) at one site",
    cls=SteeringVectors,
    reads=_reads,
    fit=lambda positive, negative, opts, ctx: mean_diff_from_activations(pooled(positive), pooled(negative)),
    strength="s scales the mean-difference vector",
    default_positions="all",
    grid=(1.0, 2.0, 4.0, 8.0),
    aliases=("mean-diff",),
)
