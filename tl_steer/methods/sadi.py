"""SADI: Semantics-Adaptive Dynamic Intervention (Wang, Yang & Peng, ICLR 2025, arXiv:2410.12299).

Fitting. From contrastive texts, take the mean activation difference (positive − negative) at the last token of
every text for each *element*: an attention head (``attn.hook_z``; a head's score is the mean of its difference
over ``d_head``), an MLP neuron (``mlp.hook_post``) or a hidden unit (``hook_resid_*``, ``hook_mlp_out``,
``hook_attn_out``). Rank all elements of all chosen layers together and keep the global top-K by signed score:
a binary mask ``M`` with exactly K ones (ties: lower ``(layer, element)`` index first). Neurons are ranked on the
MLP activation function's output ``act(gate)`` (``act_fn(mlp.hook_pre)``), as the reference does, when the MLP is
gated; ``rank="post"`` ranks on ``hook_post`` itself. The edit is on ``hook_post`` either way (scaling ``act(gate)``
scales ``act(gate) * up`` by the same factor).

Update rule (input-adaptive): ``a' = a + delta * (M ⊙ a)`` (``delta`` is the method's ``strength``) at the chosen
positions; the steering vector ``delta * (M ⊙ a)`` is built from the input's own activation. For heads, ``M`` covers
the selected heads' whole ``d_head`` slices. Default positions: the last prompt token (``Positions.LAST_PROMPT``).

Two modes (``hooks(model, mode=...)``):

* ``"live"`` (default): scale the live activation at the edited position. Edits at one layer reach the later
  layers at the same position, as in any steering hook.
* ``"reference"``: what the reference code does. At the last prompt token, *every* layer's activation at the site
  is overwritten with a clean (unsteered) run's value, the selected elements scaled by ``1 + delta``; later layers
  at that position therefore never see the earlier edits ("frozen-clean" patching). It needs the clean values
  ([`tl_steer.methods.sadi.Sadi.clean_activations()`][tl_steer.methods.sadi.Sadi.clean_activations]). For neurons it freezes ``mlp.hook_pre`` (so ``act(gate)`` is the clean one,
  as the reference freezes ``act_fn``'s output) and scales ``hook_post``.

Differences from the reference code (github.com/weixuan-wang123/SADI, HEAD d7fedf0):

* The reference *replaces* the activation by ``s * a``, so its scale ``s`` is ``1 + strength`` here.
* It picks the number of elements and the strength by the best score *on the test split*. Use the validation split
  (``benchmarks/sadi_table.py`` does); never tune on test data.
* Its selection looks indices up by value (``np.where(values == v)``), so tied scores give duplicate elements;
  here a stable sort gives exactly K distinct ones.
* As published, ``intervention.py`` calls ``steer_heads`` and ``trace_head_patch`` with one positional argument
  missing (``file`` / ``tokenizer``), so it does not run without that fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from .._typecheck import typed
from .._types import TransformerBridge
from ..collect import collect
from ..core import (
    HookList,
    Positions,
    PositionSpec,
    as_strength,
    as_strengths,
    parse_position_set,
    row_scale,
    saved_strength,
    scoped,
)
from ..errors import ShapeError, SteeringError, ensure_finite
from ..functional import mean_difference
from ..functional.sadi import (
    Select,
    expand_head_mask,
    frozen_edit,
    head_scores,
    neuron_activation,
    sadi_edit,
    sadi_scale,
    top_k_mask,
)
from ..pairs import ContrastSet
from ..protocol import AffineEdit
from ..registry import (
    Described,
    FitContext,
    FitOption,
    FitOptions,
    MethodSpec,
    gated_act_fn,
    pooled,
    read_activations,
)
from ..sites import Site, check_activation, feature_shape, hook_name, parse_site, site_of, validate_hook_name


@dataclass(frozen=True)
class SadiEdit:
    """``a + delta * (M ⊙ a)`` at one hook; ``mask`` has the activation's trailing shape."""

    mask: Bool[Tensor, "*feature"] | Float[Tensor, "*feature"]  #: 0/1, in the model's dtype when built by ``hooks``
    delta: float | Tensor  #: a number, or one per batch row (``(batch,)``)

    @property
    def rows(self) -> int | None:
        """The batch size per-row strengths are tied to (None for one strength)."""
        return len(self.delta) if isinstance(self.delta, Tensor) else None

    @typed
    def __call__(self, activation: Float[Tensor, "batch pos *feature"], hook: Any) -> Float[Tensor, "batch pos *feature"]:
        check_activation(activation, hook, tuple(self.mask.shape), "SADI")
        return sadi_edit(activation, self.mask, row_scale(self.delta, activation, hook))


@dataclass(frozen=True)
class SadiFrozen:
    """The reference mode at one hook: every position becomes ``scale ⊙ clean`` (a scope keeps the edited one)."""

    clean: Float[Tensor, "batch *feature"]
    scale: Float[Tensor, "*feature"]

    @property
    def rows(self) -> int:
        """The batch the clean values belong to, row by row."""
        return int(self.clean.shape[0])

    @typed
    def __call__(self, activation: Float[Tensor, "batch pos *feature"], hook: Any) -> Float[Tensor, "batch pos *feature"]:
        check_activation(activation, hook, tuple(self.scale.shape), "SADI (reference mode)")
        if activation.shape[0] != self.clean.shape[0]:
            raise ShapeError(
                f"SADI reference mode at hook {getattr(hook, 'name', hook)!r}: clean values are for a batch of "
                f"{self.clean.shape[0]} but the forward has {activation.shape[0]} rows; compute "
                "Sadi.clean_activations on the same prompts, in the same order"
            )
        return frozen_edit(activation, self.clean, self.scale)


Mode = str  # "live" | "reference"


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
        """The number of selected elements (ones in the mask)."""
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
        """The mask of one layer in the activation's trailing shape (heads expanded over ``d_head``)."""
        row = self.mask[self.layers.index(layer)]
        return expand_head_mask(row, int(self.d_head)) if self.site is Site.Z else row

    def hooks(
        self, model: TransformerBridge, positions: PositionSpec | None = None, strength: float | None = None, mode: Mode = "live",
        clean: dict[str, Tensor] | None = None,
    ) -> HookList:
        """TL hook list ``[(hook_name, fn), ...]``.

        Args:
            model: the ``TransformerBridge`` the hooks will run on.
            positions: default the last prompt token (the paper); ``"last_prompt+generated"`` also edits generated
                tokens (live mode only).
            strength: ``delta`` (default the fitted one); the reference's scale is ``1 + delta``. A ``(batch,)``
                tensor or list gives each batch row its own ``delta`` (live mode).
            mode: ``"live"`` scales the live activation, one hook per layer with selected elements;
                ``"reference"`` is the reference code's frozen-clean patch at the last prompt token, one hook per
                fitted layer (see the module docstring).
            clean: reference mode only: ``{name: (batch, *feature)}`` from [`tl_steer.methods.sadi.Sadi.clean_activations()`][tl_steer.methods.sadi.Sadi.clean_activations] on the same
                prompts, in the same order.

        Returns:
            The hook list, for ``steer(model, hooks)`` or ``model.hooks(fwd_hooks=...)`` under ``tracking``.
        """
        d = self.strength if strength is None else as_strengths(strength)
        positions = positions or Positions.LAST_PROMPT
        if mode == "reference":
            if isinstance(d, Tensor):
                raise SteeringError("SADI reference mode takes one strength, not per-row strengths; use mode='live'")
            return self._reference_hooks(model, positions, d, clean)
        if mode != "live":
            raise SteeringError(f"SADI mode must be 'live' or 'reference', got {mode!r}")
        if clean is not None:
            raise SteeringError("clean= is for mode='reference'; live mode scales the input's own activation")
        out: HookList = []
        for name in self.hook_names():
            validate_hook_name(model, name)
            layer = site_of(name)[0]
            mask = self.feature_mask(layer).to(device=_device(model), dtype=_dtype(model))  # converted once, here
            out.append((name, scoped(SadiEdit(mask, d), positions, model)))
        return out

    def affine_edits(self, strength: float | None = None) -> dict[str, AffineEdit]:
        """Live mode as ``{hook: scale}``, ``scale = 1 + delta * M`` (for export at every position; the reference
        mode patches frozen clean values and is not a fixed edit)."""
        d = self.strength if strength is None else as_strength(strength)
        if isinstance(d, Tensor):
            raise SteeringError("export one strength, not per-row strengths: .with_strength(delta)")
        return {name: AffineEdit(scale=sadi_scale(self.feature_mask(site_of(name)[0]), float(d)))
                for name in self.hook_names()}

    def clean_names(self) -> list[str]:
        """The hooks whose clean values the reference mode freezes (``mlp.hook_pre`` for neurons)."""
        if self.site is Site.MLP_POST:
            return [f"blocks.{layer}.mlp.hook_pre" for layer in self.layers]
        return [hook_name(layer, self.site) for layer in self.layers]

    def clean_activations(self, model: TransformerBridge, prompts: Sequence[str], batch_size: int = 8) -> dict[str, Tensor]:
        """An unsteered run's activations at each prompt's last token, at [`tl_steer.methods.sadi.Sadi.clean_names()`][tl_steer.methods.sadi.Sadi.clean_names] (for reference mode)."""
        return collect(model, list(prompts), self.clean_names(), read="last", batch_size=batch_size, progress=False).acts

    def _reference_hooks(self, model: TransformerBridge, positions: PositionSpec, delta: float, clean: dict[str, Tensor] | None) -> HookList:
        if parse_position_set(positions) != (Positions.LAST_PROMPT,):
            raise SteeringError(
                f"SADI reference mode patches the last prompt token only (the reference's ntoks - 1), got positions "
                f"{positions!r}; use mode='live' to edit generated tokens"
            )
        names = self.clean_names()
        if clean is not None and not isinstance(clean, Mapping):
            raise SteeringError(
                f"SADI reference mode: clean must be a dict {{hook_name: (batch, *feature) tensor}} from "
                f"sadi.clean_activations(model, prompts), got {type(clean).__name__}"
            )
        if clean is None or not set(names) <= set(clean):
            missing = sorted(set(names) - set(clean or {}))
            raise SteeringError(
                f"SADI reference mode needs clean values at {len(names)} hooks (missing e.g. {missing[:2]}): pass "
                "clean=sadi.clean_activations(model, prompts) computed on the same prompts"
            )
        rows = None
        for layer, name in zip(self.layers, names, strict=True):
            c, want = clean[name], tuple(self.feature_mask(layer).shape)
            if not isinstance(c, Tensor) or not c.is_floating_point() or c.ndim != 1 + len(want) or tuple(c.shape[1:]) != want:
                got = f"{tuple(c.shape)} {c.dtype}" if isinstance(c, Tensor) else type(c).__name__
                raise ShapeError(
                    f"SADI reference mode: clean[{name!r}] must be a float (batch, {', '.join(map(str, want))}) tensor, "
                    f"got {got}; compute it with sadi.clean_activations(model, prompts)"
                )
            if rows is not None and c.shape[0] != rows:
                raise ShapeError(f"SADI reference mode: clean values have {rows} and {c.shape[0]} rows; use one batch of prompts")
            rows = c.shape[0]
            ensure_finite({f"clean[{name!r}]": c}, "SADI reference mode")
        out: HookList = []
        for layer, name in zip(self.layers, names, strict=True):
            validate_hook_name(model, name)
            mask = self.feature_mask(layer)
            if self.site is Site.MLP_POST:  # freeze act(gate) at its clean value, scale the neurons live
                out.append((name, scoped(SadiFrozen(clean[name], torch.ones(mask.shape)), positions, model)))
                if bool(mask.any()):
                    out.append((hook_name(layer, self.site), scoped(SadiEdit(mask, delta), positions, model)))
            else:
                out.append((name, scoped(SadiFrozen(clean[name], sadi_scale(mask, delta)), positions, model)))
        return out

    def with_strength(self, strength: float) -> Sadi:
        """The same fitted method at another strength (no refitting)."""
        return replace(self, strength=strength)

    def with_k(self, k: int, select: Select = "top") -> Sadi:
        """Same scores, a new top-``k`` mask (cheap: for sweeping K)."""
        return replace(self, mask=top_k_mask(self.scores, k, select))

    def to(self, device: Any) -> Sadi:
        """The same method with its tensors on ``device``."""
        return replace(self, scores=self.scores.to(device), mask=self.mask.to(device))

    def to_state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """``(tensors, config)`` for [`tl_steer.io.save()`][tl_steer.io.save]: the tensors go to safetensors, the config to JSON."""
        config = {"site": self.site.value, "layers": list(self.layers), "strength": self.strength, "d_head": self.d_head,
                  "k": self.k, "hook_names": self.hook_names()}
        return {"scores": self.scores, "mask": self.mask}, config

    @classmethod
    def from_state(cls, tensors: dict[str, Tensor], config: dict[str, Any]) -> Sadi:
        """The inverse of [`tl_steer.methods.sadi.Sadi.to_state()`][tl_steer.methods.sadi.Sadi.to_state] (what [`tl_steer.io.load_method()`][tl_steer.io.load_method] calls)."""
        return cls(config["site"], tuple(config["layers"]), tensors["scores"], tensors["mask"].bool(),
                   saved_strength(config, "delta"), config.get("d_head"))  # format 1 said delta

    @classmethod
    def from_activations(
        cls, positive: dict[str, Tensor], negative: dict[str, Tensor], k: int, strength: float = 1.0,
        select: Select = "top", neuron_act: str | None = None,
    ) -> Sadi:
        """Fit from last-token activations ``{hook_name: (n, *feature)}`` of one site over several layers.

        Neurons ranked as the reference ranks them: pass ``blocks.L.mlp.hook_pre`` activations (the gate's
        pre-activation) with ``neuron_act`` (``model.cfg.act_fn``); the scores are then those of ``act(hook_pre)`` and
        the fitted method edits ``blocks.L.mlp.hook_post``.
        """
        pos, neg = _as_neurons(positive, neuron_act), _as_neurons(negative, neuron_act)
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
        model: TransformerBridge,
        contrast: ContrastSet,
        site: Site | str = Site.Z,
        layers: Sequence[int] | None = None,
        k: int = 8,
        strength: float = 1.0,
        select: Select = "top",
        batch_size: int = 8,
        progress: bool = False,
        rank: str = "act_fn",
    ) -> Sadi:
        """Collect last-token activations of ``contrast`` at ``site`` on ``layers`` (default all) and fit.

        ``rank`` (neurons only): ``"act_fn"`` ranks on the activation function's output where the MLP is gated (the
        reference), ``"post"`` on ``hook_post``."""
        site = parse_site(site)
        layers = list(range(model.cfg.n_layers)) if layers is None else [int(x) for x in layers]
        feature_shape(model, site)  # validates the site against the model config
        act = _neuron_act(model, site, rank)
        names = [f"blocks.{lay}.mlp.hook_pre" if act else hook_name(lay, site) for lay in layers]
        pos, neg = read_activations(model, [contrast], names, FitOptions(read_batch_size=batch_size, progress=progress))
        a = contrast.attribute
        return cls.from_activations(pos[a], neg[a], k=k, strength=strength, select=select, neuron_act=act)


_PRE = ".mlp.hook_pre"


def _device(model: Any) -> Any:
    return getattr(getattr(model, "cfg", None), "device", None) or "cpu"


def _dtype(model: Any) -> torch.dtype:
    dtype = getattr(getattr(model, "cfg", None), "dtype", None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def _neuron_act(model: TransformerBridge, site: Site, rank: str) -> str | None:
    """The activation function to rank neurons on, or None to rank on the site's own activation."""
    if rank not in ("act_fn", "post"):
        raise SteeringError(f"SADI rank must be 'act_fn' (the reference) or 'post', got {rank!r}")
    return gated_act_fn(model) if site is Site.MLP_POST and rank == "act_fn" else None


def _as_neurons(acts: dict[str, Tensor], neuron_act: str | None) -> dict[str, Tensor]:
    """``mlp.hook_pre`` activations -> ``act(pre)`` under the ``mlp.hook_post`` names; other names unchanged."""
    pre = [n for n in acts if n.endswith(_PRE)]
    if not pre:
        return acts
    if neuron_act is None:
        raise SteeringError(
            f"SADI got {pre[0]!r} (the gate's pre-activation) but no neuron_act to turn it into the activation "
            "function's output; pass neuron_act=model.cfg.act_fn or fit on blocks.L.mlp.hook_post"
        )
    if len(pre) != len(acts):
        raise SteeringError(f"SADI: mlp.hook_pre activations cannot be mixed with other hooks, got {sorted(acts)}")
    return {n[: -len(_PRE)] + ".mlp.hook_post": neuron_activation(v, neuron_act) for n, v in acts.items()}


def _reads(model: TransformerBridge, opts: FitOptions) -> list[str]:
    site = parse_site(opts.site or Site.Z)
    feature_shape(model, site)
    if _neuron_act(model, site, opts.extra.get("rank", "act_fn")):
        return [f"blocks.{layer}{_PRE}" for layer in range(model.cfg.n_layers)]
    return [hook_name(layer, site) for layer in range(model.cfg.n_layers)]


def _fit(positive: Any, negative: Any, opts: FitOptions, ctx: FitContext) -> Sadi:
    extra = {k: v for k, v in opts.extra.items() if k != "rank"}
    return Sadi.from_activations(pooled(positive), pooled(negative), k=opts.k_or(8), neuron_act=ctx.neuron_act, **extra)


SPEC = MethodSpec(
    name="sadi",
    summary="SADI: a + s*(M ⊙ a), M = global top-K heads/neurons/units by mean difference (input-adaptive)",
    cls=Sadi,
    reads=_reads,
    fit=_fit,
    strength="s is delta (the reference's scale is 1 + delta)",
    default_positions="last_prompt",
    grid=(4.0, 9.0, 19.0, 39.0, 79.0),
    options=(FitOption("select", str, "rank elements by signed score (top), its negation (bottom) or |score| (abs)",
                       ("top", "bottom", "abs")),
             FitOption("rank", str, "neurons: rank on the MLP activation function's output (act_fn, the reference) "
                       "or on hook_post (post)", ("act_fn", "post"))),
)
