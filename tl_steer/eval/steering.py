"""The conditions an evaluation compares: no steering, prompting, and every registered steering method.

``none`` and ``prompting`` need no fitting (``prompting`` puts the task's instruction in front of every prompt). The
steering methods come from [`tl_steer.registry`][tl_steer.registry]: fitting ([`fit()`][tl_steer.eval.steering.fit], [`fit_many()`][tl_steer.eval.steering.fit_many]), applying
([`hooks()`][tl_steer.eval.steering.hooks]) and loading ([`load_fitted()`][tl_steer.eval.steering.load_fitted]) dispatch through it, so a newly registered method is evaluated with no
change here. Single-attribute methods given several contrast sets are fitted on their union; multi-attribute
methods get one attribute per set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import io, registry
from .._types import TransformerBridge
from ..core import HookList
from ..errors import SteeringError
from ..pairs import ContrastSet
from ..registry import FitOptions

__all__ = ["BASELINES", "FitOptions", "conditions", "fit", "fit_many", "fitted_names", "hooks", "load_fitted", "parse_method"]

#: evaluation conditions that are not steering methods
BASELINES = ("none", "prompting")
_BASELINE_ALIASES = {"base": "none"}


def fitted_names() -> tuple[str, ...]:
    """The registered steering methods (all need fitting; ``import tl_steer`` registers them)."""
    return registry.names()


def conditions() -> tuple[str, ...]:
    """Every condition ``tl-steer eval --method`` accepts."""
    return BASELINES + fitted_names()


def parse_method(name: str) -> str:
    """The canonical condition name (``none``, ``prompting`` or a registered method) of a CLI spelling."""
    key = str(name).strip().lower()
    key = _BASELINE_ALIASES.get(key, key)
    if key in BASELINES:
        return key
    resolved = registry.resolve(key)
    if resolved is None:
        raise SteeringError(f"unknown method {name!r}; choose one of {', '.join(conditions())}")
    return resolved


def _steering(method: str) -> str:
    m = parse_method(method)
    if m in BASELINES:
        raise SteeringError(f"method {m!r} has nothing to fit; choose one of {', '.join(fitted_names())}")
    return m


def fit(method: str, model: TransformerBridge, sets: Sequence[ContrastSet], opts: FitOptions | None = None) -> Any:
    """Fit ``method`` on ``sets`` and return the fitted method (saveable with [`tl_steer.io.save()`][tl_steer.io.save])."""
    return registry.fit(_steering(method), model, sets, opts)


def fit_many(methods: Sequence[str], model: TransformerBridge, sets: Sequence[ContrastSet], opts: FitOptions | None = None) -> dict[str, Any]:
    """Fit several methods from ONE activation-reading pass over the contrast texts (see [`registry.fit_many()`][tl_steer.registry.fit_many])."""
    return registry.fit_many([_steering(m) for m in methods], model, sets, opts)


def default_positions(method: str) -> str | None:
    """The position scope a method is applied at in evaluations (its registry default)."""
    m = parse_method(method)
    return None if m in BASELINES else registry.get(m).default_positions


def hooks(method: str, fitted: Any, model: TransformerBridge, positions: str | None = None, strength: float | None = None) -> HookList:
    """The TL hook list of a fitted method (``[]`` for the baselines) at the method's default positions."""
    m = parse_method(method)
    if m in BASELINES:
        return []
    return fitted.hooks(model, positions=positions or registry.get(m).default_positions, strength=strength)


def load_fitted(path: Any, model: TransformerBridge, method: str | None = None) -> tuple[str, Any]:
    """``(method name, fitted method)`` saved by ``tl-steer fit``; ``method``, when given, must match the artefact."""
    fitted = io.load_method(path, model=model, expect=_steering(method) if method else None)
    return registry.resolve(fitted.method) or fitted.method, fitted
