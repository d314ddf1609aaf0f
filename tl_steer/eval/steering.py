"""Fit and apply the steering methods the evaluation compares, by name.

``none`` and ``prompting`` need no fitting (``prompting`` puts the task's instruction in front of every prompt).
``caa`` (mean difference), ``iti``, ``sadi`` and ``mat-steer`` are imported lazily from ``tl_steer.methods``; a
missing module gives a clear :class:`~tl_steer.errors.SteeringError`.

Single-attribute methods (CAA, ITI, SADI) given several contrast sets are fitted on their union (the same train
texts MAT-Steer sees, merged); MAT-Steer gets one attribute per set and learns its gates jointly.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core import HookList
from ..errors import SteeringError
from ..pairs import ContrastSet
from ..sites import Site, hook_name

METHODS = ("none", "prompting", "caa", "iti", "sadi", "mat-steer")
FITTED = ("caa", "iti", "sadi", "mat-steer")
_MODULES = {"caa": "mean_diff", "iti": "iti", "sadi": "sadi", "mat-steer": "mat_steer"}
#: default position scope when applying each method (``--positions`` overrides)
DEFAULT_POSITIONS = {"caa": "all", "iti": "all", "sadi": "last_prompt", "mat-steer": "all"}


def parse_method(name: str) -> str:
    key = name.lower().replace("_", "-")
    key = {"matsteer": "mat-steer", "mean-diff": "caa", "base": "none"}.get(key, key)
    if key not in METHODS:
        raise SteeringError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return key


def _module(method: str) -> Any:
    mod = f"tl_steer.methods.{_MODULES[method]}"
    try:
        return importlib.import_module(mod)
    except ModuleNotFoundError as e:
        if e.name == mod:
            raise SteeringError(
                f"method {method!r} needs {mod}, which is not in this checkout yet; "
                f"evaluate with --method none/prompting or add the module"
            ) from None
        raise


def merge(sets: Sequence[ContrastSet], attribute: str = "merged") -> ContrastSet:
    if len(sets) == 1:
        return sets[0]
    return ContrastSet(attribute, sum((s.positive for s in sets), ()), sum((s.negative for s in sets), ()))


@dataclass
class FitOptions:
    """Knobs shared by the CLI and the benchmark; ``None`` means the method's default."""

    layer: int | None = None  #: default: n_layers // 2
    site: str | None = None  #: CAA/MAT-Steer: resid_pre; SADI: z
    k: int | None = None  #: ITI heads / SADI elements
    seed: int = 0
    batch_size: int = 8
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  #: passed to the method's fit function


def fit(method: str, model: Any, sets: Sequence[ContrastSet], opts: FitOptions | None = None) -> Any:
    """Fit ``method`` on ``sets`` and return the method object (saveable with :func:`tl_steer.io.save`)."""
    method = parse_method(method)
    if method not in FITTED:
        raise SteeringError(f"method {method!r} has nothing to fit")
    if not sets:
        raise SteeringError("fit needs at least one contrast set")
    opts = opts or FitOptions()
    mod = _module(method)
    layer = opts.layer if opts.layer is not None else model.cfg.n_layers // 2
    if not 0 <= layer < model.cfg.n_layers:
        raise SteeringError(f"layer {layer} is out of range for a model with {model.cfg.n_layers} layers")
    common = dict(batch_size=opts.batch_size, progress=opts.progress)
    if method == "caa":
        return mod.mean_diff(model, merge(sets), layer=layer, site=opts.site or Site.RESID_PRE, **common, **opts.extra)
    if method == "iti":
        kw = dict(seed=opts.seed, **common, **opts.extra)
        if opts.k is not None:
            kw["k"] = opts.k
        return mod.Iti.from_contrast(model, merge(sets), **kw)
    if method == "sadi":
        kw = dict(site=opts.site or Site.Z, **common, **opts.extra)
        if opts.k is not None:
            kw["k"] = opts.k
        return mod.Sadi.from_contrast(model, merge(sets), **kw)
    name = hook_name(layer, opts.site or Site.RESID_PRE)
    fitted, _history = mod.MatSteer.fit_texts(
        model, list(sets), name, collect_batch_size=opts.batch_size, seed=opts.seed, progress=opts.progress,
        **opts.extra,
    )
    return fitted


def hooks(method: str, fitted: Any, model: Any, positions: str | None = None, strength: float | None = None) -> HookList:
    """The TL hook list of a fitted method; ``strength`` overrides its coef (CAA, MAT-Steer) / alpha / delta."""
    method = parse_method(method)
    if method in ("none", "prompting"):
        return []
    pos = positions or DEFAULT_POSITIONS[method]
    key = {"caa": "coef", "iti": "alpha", "sadi": "delta", "mat-steer": "coef"}[method]
    kw = {key: strength} if strength is not None else {}
    return fitted.hooks(model, positions=pos, **kw)


def load(method: str, path: Any, model: Any) -> Any:
    """Load a method saved by ``tl-steer fit`` (checks the model fingerprint)."""
    from .. import io

    method = parse_method(method)
    _module(method)
    return io.load(path, model=model)


def fit_many(methods: Sequence[str], model: Any, sets: Sequence[ContrastSet], opts: FitOptions | None = None) -> dict[str, Any]:
    """Fit several methods from ONE activation-collection pass over the contrast texts (last token of each text).

    Same defaults as :func:`fit` (CAA and MAT-Steer at ``resid_pre`` of ``layer``; ITI and SADI over the heads
    of every layer), but each text runs through the model once instead of once per method.
    """
    from ..collect import collect

    opts = opts or FitOptions()
    methods = [parse_method(m) for m in methods]
    if any(m not in FITTED for m in methods):
        raise SteeringError(f"fit_many fits {FITTED}, got {methods}")
    layer = opts.layer if opts.layer is not None else model.cfg.n_layers // 2
    point = hook_name(layer, opts.site or Site.RESID_PRE)
    heads = [hook_name(i, Site.Z) for i in range(model.cfg.n_layers)]
    names = sorted(({point} if {"caa", "mat-steer"} & set(methods) else set())
                   | (set(heads) if {"iti", "sadi"} & set(methods) else set()))
    pos: dict[str, dict[str, Any]] = {}
    neg: dict[str, dict[str, Any]] = {}
    for s in sets:
        kw = dict(positions="last", batch_size=opts.batch_size, progress=opts.progress)
        pos[s.attribute] = collect(model, list(s.positive), names, **kw).acts
        neg[s.attribute] = collect(model, list(s.negative), names, **kw).acts

    def merged(side: dict[str, dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
        import torch

        return {k: torch.cat([side[a][k] for a in side]) for k in keys}

    out: dict[str, Any] = {}
    for m in methods:
        mod = _module(m)
        if m == "caa":
            out[m] = mod.mean_diff_from_activations(merged(pos, [point]), merged(neg, [point]))
        elif m == "iti":
            kw = {"k": opts.k} if opts.k is not None else {}
            out[m] = mod.Iti.from_activations(merged(pos, heads), merged(neg, heads), seed=opts.seed, paired=True, **kw)
        elif m == "sadi":
            out[m] = mod.Sadi.from_activations(merged(pos, heads), merged(neg, heads), k=opts.k or 8)
        else:
            out[m], _ = mod.MatSteer.fit(
                {a: pos[a][point] for a in pos}, {a: neg[a][point] for a in neg}, point, seed=opts.seed,
                progress=opts.progress, **opts.extra,
            )
    return out
