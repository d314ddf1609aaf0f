"""The steering-method protocol and its registry.

A fitted steering method is a small frozen dataclass that satisfies [`SteeringMethod`][tl_steer.registry.SteeringMethod]: one way to apply it
(``hooks(model, positions=..., strength=...)``, TL's ``[(hook_name, fn), ...]``), a ``strength`` with
``with_strength``, and a state for [`tl_steer.io`][tl_steer.io]. Each method module declares one [`MethodSpec`][tl_steer.registry.MethodSpec] (its CLI
name, how it is fitted from activations, what it reads, its default position scope, its strength and validation
grid, its own fit options) and the registry ([`tl_steer.methods`][tl_steer.methods]) registers it. Everything that dispatches on
methods (``io``, ``tl_steer.eval``, the CLI, ``sweep`` and the benchmarks) iterates over the registry; no method is
named anywhere else.

Fitting is one code path: [`fit_many()`][tl_steer.registry.fit_many] reads the union of the activations every requested method needs in one
pass over the contrast texts, then calls each method's ``fit``; [`fit()`][tl_steer.registry.fit] is ``fit_many`` with one method.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from ._types import TransformerBridge
from .core import HookList, PositionSpec
from .errors import ShapeError, SteeringError, check_bos, check_int, ensure_finite
from .pairs import ContrastSet
from .sites import Site, feature_shape

#: activations read for fitting: ``{attribute: {hook_name: (n, *feature)}}``
Acts = Mapping[str, Mapping[str, Tensor]]


@runtime_checkable
class SteeringMethod(Protocol):
    """What every fitted steering method provides, and what tl_steer's code relies on.

    * ``method``: the registry name of the method that produced it; ``state``: the name ``tl_steer.io`` saves it
      under (one per class, see [`state_classes()`][tl_steer.registry.state_classes]).
    * ``strength``: one finite float, the fitted strength (``0`` edits nothing).
    * ``hooks(model, positions=None, strength=None)``: TransformerLens' own hook list ``[(hook_name, fn), ...]``.
      ``strength`` overrides the fitted one for these hooks only: a float, or one finite value per batch row (a
      ``(batch,)`` tensor or list; ``tl_steer.sweep`` runs a whole strength grid in one batch this way). Build it
      with [`tl_steer.core.as_strengths()`][tl_steer.core.as_strengths], which checks either form; the hook
      functions read it with ``tl_steer.core.row_scale`` so that a per-row strength follows the rows through
      padding and KV caches.
    * ``hook_names()``, ``with_strength(strength)`` (a float; same tensors), ``to(device)``.
    * ``to_state() -> (tensors, config)`` and the classmethod ``from_state(tensors, config)``, its inverse: the
      tensors go to safetensors, the config to plain JSON (no tensors, no per-row strengths).
    * Hook functions never edit their input in place and return the activation's dtype, device and shape
      (the property tests check every registered method).
    """

    method: str  #: registry name of the method that produced it
    state: str  #: the name ``tl_steer.io`` saves it under
    strength: float  #: the fitted strength

    def hooks(
        self, model: TransformerBridge, positions: PositionSpec | None = None,
        strength: float | Tensor | Sequence[float] | None = None,
    ) -> HookList:
        """TL hook list ``[(hook_name, fn), ...]`` at ``positions`` and ``strength`` (defaults: the method's own; a
        ``(batch,)`` tensor or list: one strength per batch row)."""
        ...

    def hook_names(self) -> list[str]:
        """The hooks this method edits, in layer order."""
        ...

    def with_strength(self, strength: float) -> SteeringMethod:
        """The same fitted method at another strength (no refitting)."""
        ...

    def to(self, device: Any) -> SteeringMethod:
        """The same method with its tensors on ``device``."""
        ...

    def to_state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """``(tensors, config)`` for saving: the tensors go to safetensors, the config to JSON."""
        ...

    @classmethod
    def from_state(cls, tensors: dict[str, Tensor], config: dict[str, Any]) -> SteeringMethod:
        """The method ``to_state`` described."""
        ...


@dataclass(frozen=True)
class FitOption:
    """A method-specific fit option, exposed as ``--NAME`` by the CLI."""

    name: str  #: keyword of the method's fit function (``--name-with-dashes`` on the command line)
    type: Callable[[str], Any]
    help: str
    choices: tuple[Any, ...] | None = None


@dataclass
class FitOptions:
    """Where and how to fit; ``None`` means the method's default. ``extra``: the method's own [`FitOption`][tl_steer.registry.FitOption] s."""

    layer: int | None = None  #: steering layer of single-site methods (default ``n_layers // 2``)
    site: str | None = None  #: hook site (each method has its default)
    k: int | None = None  #: number of selected elements, for methods that select (heads, neurons, units)
    read: str | int = "last"  #: where activations are read in each contrast text: "last", "mean" or -i
    seed: int = 0
    batch_size: int = 8
    progress: bool = True
    #: put a BOS token before each contrast text; None: the tokenizer's own rule (``collect.tokenizer_bos``)
    prepend_bos: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_int(self.layer, "FitOptions.layer", 0, optional=True)
        check_int(self.k, "FitOptions.k", 1, optional=True)
        check_int(self.seed, "FitOptions.seed", 0)
        check_int(self.batch_size, "FitOptions.batch_size", 1)
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


@dataclass(frozen=True)
class FitContext:
    """What fitting knows about the model and the contrast sets, beside the activations (the user sets none of it:
    [`FitContext.of()`][tl_steer.registry.FitContext.of] reads it)."""

    #: ``{attribute: (positive groups, negative groups)}`` from the contrast sets (e.g. one question's answers)
    groups: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = field(default_factory=dict)
    #: the model's trailing activation shape at every site, ``{site: shape}``
    feature_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: the MLP activation function's name (``model.cfg.act_fn``) when the MLP is gated, i.e. when
    #: ``mlp.hook_post = act(hook_pre) * hook_pre_linear`` differs from ``act(hook_pre)``; else None
    neuron_act: str | None = None

    @classmethod
    def of(cls, model: TransformerBridge, sets: Sequence[ContrastSet] = ()) -> FitContext:
        """The context of fitting on ``model`` from ``sets``."""
        return cls({s.attribute: s.groups for s in sets if s.groups is not None},
                   {site.value: feature_shape(model, site) for site in Site}, gated_act_fn(model))


@dataclass(frozen=True)
class MethodSpec:
    """One registry entry."""

    name: str  #: CLI / registry name
    summary: str  #: one line for help texts
    cls: type  #: the fitted type (its ``state`` class attribute names it in saved manifests)
    reads: Callable[[Any, FitOptions], list[str]]  #: hook names whose activations ``fit`` needs, on ``model``
    fit: Callable[[Acts, Acts, FitOptions, FitContext], Any]  #: ``(positive, negative, options, context) -> method``
    strength: str  #: what the strength scales, for help texts
    default_positions: str  #: position scope used when applying it in evaluations
    grid: tuple[float, ...]  #: strengths tried on the validation split
    options: tuple[FitOption, ...] = ()
    aliases: tuple[str, ...] = ()


_REGISTRY: dict[str, MethodSpec] = {}
_ALIASES: dict[str, str] = {}


def _key(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


def register(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to the registry (names and aliases are case- and ``_``/``-``-insensitive)."""
    for alias in (spec.name, *spec.aliases):
        key = _key(alias)
        if _ALIASES.get(key, spec.name) != spec.name:
            raise SteeringError(f"method name {alias!r} is already registered by {_ALIASES[key]!r}")
        _ALIASES[key] = spec.name
    _REGISTRY[spec.name] = spec
    return spec


def names() -> tuple[str, ...]:
    """Registered method names, in registration order."""
    return tuple(_REGISTRY)


def specs() -> tuple[MethodSpec, ...]:
    """Every registered [`MethodSpec`][tl_steer.registry.MethodSpec], in registration order."""
    return tuple(_REGISTRY.values())


def resolve(name: str) -> str | None:
    """The registered name for ``name`` or one of its aliases; ``None`` when unknown."""
    return _ALIASES.get(_key(name))


def get(name: str) -> MethodSpec:
    """The spec of a registered method (aliases accepted)."""
    key = resolve(name)
    if key is None:
        raise SteeringError(f"unknown steering method {name!r}; registered: {', '.join(names())}")
    return _REGISTRY[key]


def state_classes() -> dict[str, type]:
    """``{state name: class}`` of every registered method's fitted type (what [`tl_steer.io.load()`][tl_steer.io.load] reads)."""
    return {spec.cls.state: spec.cls for spec in _REGISTRY.values()}


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
    """Groups of the pooled texts, ``(attribute, group)`` per text in [`pooled()`][tl_steer.registry.pooled] order; None if a set has none."""
    if not all(a in ctx.groups for a in positive):
        return None
    return ([(a, g) for a in positive for g in ctx.groups[a][0]], [(a, g) for a in positive for g in ctx.groups[a][1]])


def is_paired(positive: Acts, negative: Acts) -> bool:
    """Every attribute has as many positive as negative rows (pairs in the same order)."""
    def n(side: Mapping[str, Tensor]) -> int:
        return len(next(iter(side.values())))

    return all(n(positive[a]) == n(negative[a]) for a in positive)


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
    kw = dict(read=opts.read, batch_size=opts.batch_size, progress=opts.progress, prepend_bos=opts.prepend_bos)
    positive = {s.attribute: collect(model, list(s.positive), list(hook_names), **kw).acts for s in sets}
    negative = {s.attribute: collect(model, list(s.negative), list(hook_names), **kw).acts for s in sets}
    return positive, negative


def gated_act_fn(model: TransformerBridge) -> str | None:
    """``model.cfg.act_fn`` when the model's MLP is gated (it has ``blocks.0.mlp.hook_pre_linear``), else None."""
    hook_dict = getattr(model, "hook_dict", {}) or {}
    if "blocks.0.mlp.hook_pre_linear" not in hook_dict:
        return None
    return getattr(getattr(model, "cfg", None), "act_fn", None)


def _check_extra(chosen: Sequence[MethodSpec], opts: FitOptions) -> None:
    unknown = set(opts.extra) - {o.name for spec in chosen for o in spec.options}
    if unknown:
        raise SteeringError(
            f"fit options {sorted(unknown)} belong to none of {[s.name for s in chosen]}; "
            + "; ".join(f"{s.name} takes {[o.name for o in s.options] or 'none'}" for s in chosen)
        )


def _own(spec: MethodSpec, opts: FitOptions) -> FitOptions:
    own = {o.name for o in spec.options}
    return FitOptions(**{**opts.__dict__, "extra": {k: v for k, v in opts.extra.items() if k in own}})


def fit_from_activations(
    method: str, model: TransformerBridge, positive: Acts, negative: Acts, opts: FitOptions | None = None,
    context: FitContext | None = None,
) -> Any:
    """Fit one registered method from activations already read: ``{attribute: {hook_name: (n, *feature)}}`` per
    side, holding at least the hooks ``get(method).reads(model, opts)`` names (e.g. from
    [`read_activations()`][tl_steer.registry.read_activations], once for several methods). ``context`` defaults to
    ``FitContext.of(model)`` (no groups)."""
    opts = opts or FitOptions()
    spec = get(method)
    _check_extra([spec], opts)
    own = _own(spec, opts)
    ctx = context if context is not None else FitContext.of(model)
    wanted = spec.reads(model, own)
    missing = [n for n in wanted if any(n not in v for v in (*positive.values(), *negative.values()))]
    if missing:
        raise SteeringError(f"{spec.name} reads {wanted}; the activations lack {missing}: read them first")
    return spec.fit({a: {k: v[k] for k in wanted} for a, v in positive.items()},
                    {a: {k: v[k] for k in wanted} for a, v in negative.items()}, own, ctx)


def fit_many(
    methods: Sequence[str], model: TransformerBridge, sets: Sequence[ContrastSet], opts: FitOptions | None = None
) -> dict[str, Any]:
    """Fit several registered methods from ONE activation-reading pass over ``sets`` (one set per attribute).

    Single-attribute methods are fitted on the union of the sets; multi-attribute methods get one attribute per set.
    Returns ``{method name: fitted method}``.
    """
    opts = opts or FitOptions()
    chosen = [get(m) for m in methods]
    _check_extra(chosen, opts)
    needed: list[str] = []
    for spec in chosen:
        needed += [n for n in spec.reads(model, _own(spec, opts)) if n not in needed]
    positive, negative = read_activations(model, sets, needed, opts)
    ctx = FitContext.of(model, sets)
    return {spec.name: fit_from_activations(spec.name, model, positive, negative, _own(spec, opts), ctx)
            for spec in chosen}


def fit(method: str, model: TransformerBridge, sets: Sequence[ContrastSet], opts: FitOptions | None = None) -> Any:
    """Fit one registered method on ``sets`` (see [`fit_many()`][tl_steer.registry.fit_many])."""
    return fit_many([method], model, sets, opts)[get(method).name]


class Described:
    """Mixin: a short ``repr`` (method, hook names, parameter norms, strength), never a tensor dump."""

    method: str
    strength: float
    state: ClassVar[str]

    def _norms(self) -> str:  # overridden by methods with something better to say
        return ""

    def __repr__(self) -> str:
        names = self.hook_names()  # type: ignore[attr-defined]
        shown = ", ".join(names[:3]) + (f", … ({len(names)} hooks)" if len(names) > 3 else "")
        extra = self._norms()
        st = self.strength
        st = f"per-row ({len(st)} rows)" if isinstance(st, Tensor) else f"{st:g}"
        return f"{type(self).__name__}({self.method}: [{shown}]{', ' + extra if extra else ''}, strength={st})"
