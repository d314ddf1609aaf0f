"""The method registry and the one fitting path.

Each method module declares one [`MethodSpec`][tl_steer.registry.MethodSpec] (its CLI name, how it is fitted from
activations, what it reads, its default position scope, its strength and validation grid, its own fit options) and
[`tl_steer.methods`][tl_steer.methods] registers it. Everything that dispatches on methods (``io``,
``tl_steer.eval``, the CLI, ``sweep`` and the benchmarks) iterates over the registry; no method is named anywhere
else. What a fitted method must provide is [`tl_steer.protocol`][tl_steer.protocol]; what fitting takes besides the
activations is [`tl_steer.fitting`][tl_steer.fitting].

Fitting is one code path: [`fit_many()`][tl_steer.registry.fit_many] reads the union of the activations every
requested method needs in one pass over the contrast texts, then calls
[`fit_from_activations()`][tl_steer.registry.fit_from_activations] per method; [`fit()`][tl_steer.registry.fit] is
``fit_many`` with one method.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._types import TransformerBridge
from .errors import SteeringError
from .fitting import (  # noqa: F401 - re-exported: methods and users import them from here too
    Acts,
    FitContext,
    FitOption,
    FitOptions,
    check_pairs,
    gated_act_fn,
    is_paired,
    pooled,
    pooled_groups,
    read_activations,
    site_norms,
)
from .pairs import ContrastSet
from .protocol import Described, SteeringMethod  # noqa: F401 - re-exported

__all__ = [
    "Acts", "Described", "FitContext", "FitOption", "FitOptions", "MethodSpec", "SteeringMethod", "check_pairs",
    "fit", "fit_from_activations", "fit_many", "gated_act_fn", "get", "is_paired", "names", "pooled",
    "pooled_groups", "read_activations", "register", "resolve", "site_norms", "specs", "state_classes",
]





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


def default_positions(method: Any) -> str:
    """The position scope a fitted ``method`` is applied at by default: its registered method's scope, ``"all"`` for
    a method the registry does not know (hand-built vectors)."""
    key = resolve(str(getattr(method, "method", "")))
    return _REGISTRY[key].default_positions if key else "all"


def state_classes() -> dict[str, type]:
    """``{state name: class}`` of every registered method's fitted type (what [`tl_steer.io.load_method()`][tl_steer.io.load_method] reads)."""
    return {spec.cls.state: spec.cls for spec in _REGISTRY.values()}


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
    [`read_activations()`][tl_steer.fitting.read_activations], once for several methods). ``context`` defaults to
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
