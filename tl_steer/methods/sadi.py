"""SADI: Semantics-Adaptive Dynamic Intervention (Wang, Yang & Peng, ICLR 2025, arXiv:2410.12299).

Fitting. From contrastive texts, take the mean activation difference (positive − negative) at the last token of
every text for each *element*: an attention head (``attn.hook_z``; a head's score is the mean of its difference
over ``d_head``), an MLP neuron (``mlp.hook_post``) or a hidden unit (``hook_resid_*``, ``hook_mlp_out``,
``hook_attn_out``). Rank all elements of all chosen layers together and keep the global top-K by signed score:
a binary mask ``M`` with exactly K ones (ties: lower ``(layer, element)`` index first).

Update rule (input-adaptive): ``a' = a + delta * (M ⊙ a)`` (``delta`` is the method's ``strength``) at the chosen positions; the steering vector
``delta * (M ⊙ a)`` is built from the input's own activation. For heads, ``M`` covers the selected heads' whole
``d_head`` slices. Default positions: the last prompt token (``Positions.LAST_PROMPT``); pass
``positions="last_prompt+generated"`` to also edit every generated token.

Differences from the reference code (github.com/weixuan-wang123/SADI):

* The reference *replaces* the activation by ``s * a``, so its scale ``s`` is ``1 + strength`` here.
* Its "neurons" hook the Llama MLP's ``act_fn`` output, ``silu(gate)``; ``mlp.hook_post`` here is
  ``silu(gate) * up``, the input of ``down_proj``.
* It picks the number of elements and the strength by the best score *on the test split*. Use
  :func:`tl_steer.sweep.sweep` with a validation scorer instead; never tune on test data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from .._typecheck import typed
from ..collect import collect
from ..core import HookList, Positions, PositionSpec, as_strength, scoped
from ..errors import ShapeError, SteeringError, ensure_finite
from ..functional import mean_difference
from ..functional.sadi import Select, expand_head_mask, head_scores, sadi_edit, top_k_mask
from ..pairs import ContrastSet
from ..registry import Described, FitOption, FitOptions, MethodSpec, pooled
from ..sites import Site, check_activation, feature_shape, hook_name, parse_site, site_of, validate_hook_name


@dataclass(frozen=True)
class SadiEdit:
    """``a + delta * (M ⊙ a)`` at one hook; ``mask`` has the activation's trailing shape."""

    mask: Bool[Tensor, "*feature"]
    delta: float

    @typed
    def __call__(self, activation: Float[Tensor, "batch pos *feature"], hook: Any) -> Float[Tensor, "batch pos *feature"]:
        check_activation(activation, hook, tuple(self.mask.shape), "SADI")
        return sadi_edit(activation, self.mask, self.delta)


@dataclass(frozen=True, repr=False)
class Sadi(Described):
    """A fitted SADI intervention spanning several layers of one site.

    ``scores[i, e]`` is the mean difference of element ``e`` at layer ``layers[i]`` (a layer × head matrix for
    ``site="z"``: plot it as a heatmap); ``mask`` the top-K binary mask of the same shape.
    """

    site: Site
    layers: tuple[int, ...]
    scores: Float[Tensor, "layer element"]
    mask: Bool[Tensor, "layer element"]
    strength: float  #: delta in ``a + delta * (M ⊙ a)``
    d_head: int | None = None  #: for ``site="z"``: width of each head's slice
    method: ClassVar[str] = "sadi"
    state: ClassVar[str] = "sadi"

    def __post_init__(self) -> None:
        object.__setattr__(self, "strength", as_strength(self.strength))
        ensure_finite({"scores": self.scores}, "Sadi")
        object.__setattr__(self, "site", parse_site(self.site))
        object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        if self.scores.shape != self.mask.shape or self.scores.ndim != 2 or self.scores.shape[0] != len(self.layers):
            raise ShapeError(
                f"SADI scores {tuple(self.scores.shape)} and mask {tuple(self.mask.shape)} must both be "
                f"(len(layers)={len(self.layers)}, elements)"
            )
        if self.site is Site.Z and not self.d_head:
            raise SteeringError("SADI on site 'z' needs d_head (the width of each head's slice)")

    def _norms(self) -> str:
        return f"site={self.site.value}, k={self.k}"

    @property
    def k(self) -> int:
        return int(self.mask.sum())

    def selected(self) -> list[tuple[int, int]]:
        """``(layer, element)`` pairs in the mask, best score first."""
        idx = self.mask.nonzero().tolist()
        idx.sort(key=lambda le: (-float(self.scores[le[0], le[1]]), le[0], le[1]))
        return [(self.layers[i], e) for i, e in idx]

    def hook_names(self) -> list[str]:
        """Hooks of the layers with at least one selected element (the others would be no-ops)."""
        return [hook_name(lay, self.site) for i, lay in enumerate(self.layers) if bool(self.mask[i].any())]

    def feature_mask(self, layer: int) -> Bool[Tensor, "*feature"]:
        row = self.mask[self.layers.index(layer)]
        return expand_head_mask(row, int(self.d_head)) if self.site is Site.Z else row

    def hooks(self, model: Any, positions: PositionSpec | None = None, strength: float | None = None) -> HookList:
        """TL hook list ``[(hook_name, fn), ...]``, one entry per layer with selected elements.

        Default positions: the last prompt token (the paper); ``"last_prompt+generated"`` also edits generated ones.
        """
        d = self.strength if strength is None else as_strength(strength)
        positions = positions or Positions.LAST_PROMPT
        out: HookList = []
        for name in self.hook_names():
            validate_hook_name(model, name)
            layer = site_of(name)[0]
            out.append((name, scoped(SadiEdit(self.feature_mask(layer), d), positions, model)))
        return out

    def with_strength(self, strength: float) -> Sadi:
        return replace(self, strength=strength)

    def with_k(self, k: int, select: Select = "top") -> Sadi:
        """Same scores, a new top-``k`` mask (cheap: for sweeping K)."""
        return replace(self, mask=top_k_mask(self.scores, k, select))

    def to(self, device: Any) -> Sadi:
        return replace(self, scores=self.scores.to(device), mask=self.mask.to(device))

    def to_state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        config = {"site": self.site.value, "layers": list(self.layers), "strength": self.strength, "d_head": self.d_head,
                  "k": self.k, "hook_names": self.hook_names()}
        return {"scores": self.scores, "mask": self.mask}, config

    @classmethod
    def from_state(cls, tensors: dict[str, Tensor], config: dict[str, Any]) -> Sadi:
        return cls(config["site"], tuple(config["layers"]), tensors["scores"], tensors["mask"].bool(),
                   config["strength"] if "strength" in config else config["delta"], config.get("d_head"))

    @classmethod
    def from_activations(
        cls, positive: dict[str, Tensor], negative: dict[str, Tensor], k: int, strength: float = 1.0,
        select: Select = "top",
    ) -> Sadi:
        """Fit from last-token activations ``{hook_name: (n, *feature)}`` of one site over several layers."""
        pos, neg = positive, negative
        if not pos or set(pos) != set(neg):
            raise SteeringError(
                f"positive and negative must hold the same non-empty hook names, got {sorted(pos)} and {sorted(neg)}"
            )
        by_layer: dict[int, str] = {}
        sites = set()
        for name in pos:
            layer, site = site_of(name)
            sites.add(site)
            by_layer[layer] = name
        if len(sites) != 1:
            raise SteeringError(f"SADI spans one site across layers; got hooks of sites {sorted(s.value for s in sites)}")
        site = sites.pop()
        layers = tuple(sorted(by_layer))
        rows, d_head = [], None
        for layer in layers:
            name = by_layer[layer]
            p, n = pos[name].float(), neg[name].float()
            want = 2 if site is Site.Z else 1
            if p.ndim != want + 1 or p.shape[1:] != n.shape[1:] or len(p) == 0 or len(n) == 0:
                raise ShapeError(
                    f"SADI activations at {name!r} must be (n, {'head, d_head' if want == 2 else 'feature'}) with n > 0 "
                    f"and equal shapes, got pos {tuple(p.shape)} and neg {tuple(n.shape)}"
                )
            ensure_finite({f"positive[{name!r}]": p, f"negative[{name!r}]": n}, "SADI")
            diff = mean_difference(p, n)
            if site is Site.Z:
                d_head = int(diff.shape[1])
                diff = head_scores(diff)
            rows.append(diff)
        if len({r.shape for r in rows}) != 1:
            raise ShapeError(f"SADI layers have different element counts: {[tuple(r.shape) for r in rows]}")
        scores = torch.stack(rows)
        if not bool(scores.abs().amax() > 0):
            raise SteeringError(
                "SADI: every element has a zero mean difference (identical positive and negative texts?), so the "
                "top-K mask would be arbitrary; check the contrast set"
            )
        return cls(site, layers, scores, top_k_mask(scores, k, select), strength, d_head)

    @classmethod
    @torch.no_grad()
    def from_contrast(
        cls,
        model: Any,
        contrast: ContrastSet,
        site: Site | str = Site.Z,
        layers: Sequence[int] | None = None,
        k: int = 8,
        strength: float = 1.0,
        select: Select = "top",
        batch_size: int = 8,
        progress: bool = False,
    ) -> Sadi:
        """Collect last-token activations of ``contrast`` at ``site`` on ``layers`` (default all) and fit."""
        site = parse_site(site)
        layers = list(range(model.cfg.n_layers)) if layers is None else [int(x) for x in layers]
        names = [hook_name(lay, site) for lay in layers]
        feature_shape(model, site)  # validates the site against the model config
        pos = collect(model, list(contrast.positive), names, read="last", batch_size=batch_size, progress=progress)
        neg = collect(model, list(contrast.negative), names, read="last", batch_size=batch_size, progress=progress)
        return cls.from_activations(pos.acts, neg.acts, k=k, strength=strength, select=select)


def _reads(model: Any, opts: FitOptions) -> list[str]:
    site = parse_site(opts.site or Site.Z)
    feature_shape(model, site)
    return [hook_name(layer, site) for layer in range(model.cfg.n_layers)]


SPEC = MethodSpec(
    name="sadi",
    summary="SADI: a + s*(M ⊙ a), M = global top-K heads/neurons/units by mean difference (input-adaptive)",
    cls=Sadi,
    reads=_reads,
    fit=lambda positive, negative, opts: Sadi.from_activations(
        pooled(positive), pooled(negative), k=opts.k or 8, **opts.extra
    ),
    strength="s is delta (the reference's scale is 1 + delta)",
    default_positions="last_prompt",
    grid=(1.0, 2.0, 4.0, 8.0),
    options=(FitOption("select", str, "rank elements by signed score (top), its negation (bottom) or |score| (abs)",
                       ("top", "bottom", "abs")),),
)
