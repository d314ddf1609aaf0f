"""What fitting takes besides the activations: [`FitOptions`][tl_steer.fitting.FitOptions] (what a user sets),
[`FitContext`][tl_steer.fitting.FitContext] (what is read from the model and the contrast sets), method options
([`FitOption`][tl_steer.fitting.FitOption]), reading activations once for several methods, and the helpers
methods' ``fit`` functions share. The orchestration (``fit_many``, ``fit_from_activations``) is in
[`tl_steer.registry`][tl_steer.registry]."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ._types import TransformerBridge
from .errors import ShapeError, SteeringError, check_bos, check_int, ensure_finite
from .pairs import ContrastSet
from .sites import Site, feature_shape

#: activations read for fitting: ``{attribute: {hook_name: (n, *feature)}}``
Acts = Mapping[str, Mapping[str, Tensor]]


@dataclass(frozen=True)
class FitOption:
    """A method-specific fit option, exposed as ``--NAME`` by the CLI."""

    name: str  #: keyword of the method's fit function (``--name-with-dashes`` on the command line)
    type: Callable[[str], Any]
    help: str
    choices: tuple[Any, ...] | None = None


@dataclass
class FitOptions:
    """Where and how to fit; ``None`` means the method's default. ``extra``: the method's own [`FitOption`][tl_steer.fitting.FitOption] s."""

    layer: int | None = None  #: steering layer of single-site methods (default ``n_layers // 2``)
    site: str | None = None  #: hook site (each method has its default)
    k: int | None = None  #: number of selected elements, for methods that select (heads, neurons, units)
    read: str | int = "last"  #: where activations are read in each contrast text: "last", "mean" or -i
    seed: int = 0
    #: texts per forward pass when reading activations (not a training batch: a method's own minibatch, such as
    #: MAT-Steer's ``batch_size``, goes in ``extra``)
    read_batch_size: int = 8
    progress: bool = True
    #: put a BOS token before each contrast text; None: the tokenizer's own rule (``collect.tokenizer_bos``)
    prepend_bos: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_int(self.layer, "FitOptions.layer", 0, optional=True)
        check_int(self.k, "FitOptions.k", 1, optional=True)
        check_int(self.seed, "FitOptions.seed", 0)
        check_int(self.read_batch_size, "FitOptions.read_batch_size", 1)
        check_bos(self.prepend_bos, "FitOptions.prepend_bos")
        if not isinstance(self.extra, dict):
            raise SteeringError(f"FitOptions.extra must be a dict of the method's own options, got {self.extra!r}")

    def k_or(self, default: int) -> int:
        """``k``, or ``default`` when it is unset (``None``; 0 is refused when the options are built)."""
        return default if self.k is None else self.k

    def layer_of(self, n_layers: int) -> int:
        """The steering layer for a model with ``n_layers`` layers (default the middle one), checked."""
        layer = n_layers // 2 if self.layer is None else self.layer
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
            raise SteeringError(f"layer {layer!r} is out of range for a model with {n_layers} layers (0..{n_layers - 1})")
        return layer


_fit_options_init = FitOptions.__init__


def _init_with_renamed_fields(self: FitOptions, *args: Any, **kwargs: Any) -> None:
    if "batch_size" in kwargs:
        raise SteeringError(
            f"FitOptions(batch_size={kwargs['batch_size']!r}): the field is now read_batch_size (texts per forward "
            "when reading activations); a method's training batch, such as MAT-Steer's, goes in "
            "extra={'batch_size': ...}"
        )
    _fit_options_init(self, *args, **kwargs)


FitOptions.__init__ = _init_with_renamed_fields  # type: ignore[method-assign]


@dataclass(frozen=True)
class FitContext:
    """What fitting knows about the model and the contrast sets, beside the activations (the user sets none of it:
    [`FitContext.of()`][tl_steer.fitting.FitContext.of] reads it)."""

    #: ``{attribute: (positive groups, negative groups)}`` from the contrast sets (e.g. one question's answers)
    groups: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = field(default_factory=dict)
    #: the model's trailing activation shape at every site, ``{site: shape}``
    feature_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: the MLP activation function's name (``model.cfg.act_fn``) when the MLP is gated, i.e. when
    #: ``mlp.hook_post = act(hook_pre) * hook_pre_linear`` differs from ``act(hook_pre)``; else None
    neuron_act: str | None = None
    #: ``{attribute: whether its contrast set's texts are aligned pairs}`` (``ContrastSet.paired``)
    paired: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def of(cls, model: TransformerBridge, sets: Sequence[ContrastSet] = ()) -> FitContext:
        """The context of fitting on ``model`` from ``sets``."""
        return cls({s.attribute: s.groups for s in sets if s.groups is not None},
                   {site.value: feature_shape(model, site) for site in Site}, gated_act_fn(model),
                   {s.attribute: s.paired for s in sets})


def pooled(acts: Acts, hook_names: Sequence[str] | None = None) -> dict[str, Tensor]:
    """Concatenate every attribute's activations: ``{hook_name: (sum of n, *feature)}`` (single-attribute fits)."""
    if not acts:
        raise SteeringError("no activations to fit on: pass at least one contrast set")
    keys = list(hook_names) if hook_names is not None else list(next(iter(acts.values())))
    return {k: torch.cat([a[k] for a in acts.values()]) for k in keys}


def check_pairs(positive: dict[str, Tensor], negative: dict[str, Tensor], what: str) -> None:
    """Both sides hold the same hook names with ``(n, *feature)`` activations of equal feature shape, n > 0."""
    if not positive or set(positive) != set(negative):
        raise SteeringError(
            f"{what}: positive and negative must hold the same non-empty hook names, got {sorted(positive)} and "
            f"{sorted(negative)}"
        )
    for name in positive:
        p, n = positive[name], negative[name]
        if p.ndim < 2 or p.shape[1:] != n.shape[1:] or len(p) == 0 or len(n) == 0:
            raise ShapeError(
                f"{what}: activations at {name!r} must be (n, *feature) with equal feature shapes and n > 0, "
                f"got positive {tuple(p.shape)} and negative {tuple(n.shape)}"
            )
        ensure_finite({f"positive[{name!r}]": p, f"negative[{name!r}]": n}, what)
        if torch.equal(p.float().mean(0), n.float().mean(0)):
            raise SteeringError(
                f"{what}: positive and negative activations at {name!r} have the same mean, so the contrast carries "
                "no direction (identical texts on both sides?); check the contrast set"
            )


def site_norms(positive: Mapping[str, Tensor], negative: Mapping[str, Tensor]) -> dict[str, float]:
    """Mean L2 norm of the fitting activations at each hook (both sides): the scale of a norm-relative strength."""
    return {k: float(torch.cat([positive[k], negative[k]]).float().flatten(1).norm(dim=1).mean()) for k in positive}


def pooled_groups(positive: Acts, ctx: FitContext) -> tuple[list[Any], list[Any]] | None:
    """Groups of the pooled texts, ``(attribute, group)`` per text in [`pooled()`][tl_steer.fitting.pooled] order; None if a set has none."""
    if not all(a in ctx.groups for a in positive):
        return None
    return ([(a, g) for a in positive for g in ctx.groups[a][0]], [(a, g) for a in positive for g in ctx.groups[a][1]])


def is_paired(positive: Acts, negative: Acts, ctx: FitContext | None = None) -> bool:
    """Every attribute's rows are pairs in the same order: its contrast set says so (``ctx.paired``), and both sides
    have as many rows. Without a context (activations from elsewhere) equal counts are taken as pairs."""
    def n(side: Mapping[str, Tensor]) -> int:
        return len(next(iter(side.values())))

    declared = ctx.paired if ctx is not None else {}
    return all(n(positive[a]) == n(negative[a]) and declared.get(a, True) for a in positive)


def read_activations(
    model: TransformerBridge, sets: Sequence[ContrastSet], hook_names: Sequence[str], opts: FitOptions
) -> tuple[dict[str, dict[str, Tensor]], dict[str, dict[str, Tensor]]]:
    """``(positive, negative)`` activations ``{attribute: {hook: (n, *feature)}}`` of every set, one pass each side."""
    from .collect import collect

    if not sets:
        raise SteeringError("fitting needs at least one contrast set")
    attrs = [s.attribute for s in sets]
    if len(set(attrs)) != len(attrs):
        raise SteeringError(f"contrast sets must have distinct attributes, got {attrs}")
    kw = dict(read=opts.read, batch_size=opts.read_batch_size, progress=opts.progress, prepend_bos=opts.prepend_bos)
    positive = {s.attribute: collect(model, list(s.positive), list(hook_names), **kw).acts for s in sets}
    negative = {s.attribute: collect(model, list(s.negative), list(hook_names), **kw).acts for s in sets}
    return positive, negative


def gated_act_fn(model: TransformerBridge) -> str | None:
    """``model.cfg.act_fn`` when the model's MLP is gated (it has ``blocks.0.mlp.hook_pre_linear``), else None."""
    hook_dict = getattr(model, "hook_dict", {}) or {}
    if "blocks.0.mlp.hook_pre_linear" not in hook_dict:
        return None
    return getattr(getattr(model, "cfg", None), "act_fn", None)
