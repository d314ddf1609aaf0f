"""MAT-Steer: gated multi-attribute steering (Nguyen, Prasad, Stengel-Eskin, Bansal, ACL 2025, arXiv 2502.12446).

Update rule at one hook site, for every token activation ``a`` and attributes ``t = 1..T``::

    g_t(a) = sigmoid(w_t . a + b_t)
    a'     = a + s * sum_t g_t(a) theta_t          (s: the method's strength, 1 in the paper)
    a'    <- a' * ||a|| / ||a'||                   (rescale=True, the paper's default: the edit only rotates a)

Fitting ([`MatSteer.fit()`][tl_steer.methods.mat_steer.MatSteer.fit]) minimises, per mini-batch of ``batch_size`` positive (desirable) and ``batch_size``
negative (undesirable) activations of *every* attribute::

    sum_t MMD^2(positive_t, edit(negative_t))         Gaussian-kernel MMD: move negative onto positive
    + l1 * mean g(positive)^2                          preservation: leave desirable tokens alone
    + l2 * mean g(negative)                            sparsity: few attributes fire per token
    + l3 * sum_{i<j} cos^2(theta_i, theta_j)           orthogonality: attributes do not interfere

with Adam. The steps are pure functions in [`tl_steer.functional.mat_steer`][tl_steer.functional.mat_steer]. ``preset="reference"`` runs the
reference code's settings (lr 1e-3, lambdas 0.9 / 0.9 / 0.1, sigma 2, random init); the default ``"tuned"`` preset
differs where the reference settings fail on small models (see [`PRESETS`][tl_steer.methods.mat_steer.PRESETS] and ``docs/methods/mat_steer.md``).

Differences from the reference code (``duykhuongnguyen/MAT-Steer`` at HEAD ``92de352``, ``validation/steering.py``):

* the MMD compares mini-batches of both sides; the reference draws a mini-batch of negatives per attribute and
  compares it with a sample of positives of the same size (the same estimator, other sampling);
* features and edits come from the same hook site (the reference reads ``hidden_states[layer]``, i.e.
  ``resid_pre``, and edits attention head outputs);
* the tuned preset uses a median-heuristic kernel (sigma = 2 on raw activations whose pairwise distances are in
  the tens makes every kernel value ~0 and the MMD gradient vanishes), mean-difference initialisation, and
  standardised optimisation (same function class and loss, exported in the paper's form: with the raw
  parametrisation the gates start saturated on large-norm residual streams and die within a step);
* seeded, held-out early stopping (tuned preset), explicit polarity (``positive`` / ``negative``).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import einops
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from .._typecheck import typed
from .._types import TransformerBridge
from ..core import (
    HookList,
    Positions,
    PositionSpec,
    as_strength,
    as_strengths,
    row_scale,
    saved_strength,
    scoped,
)
from ..errors import HookNameError, ManifestError, ShapeError, SteeringError, check_int, ensure_finite
from ..functional import mat_steer as F
from ..registry import Described, FitContext, FitOption, FitOptions, MethodSpec, read_activations
from ..sites import Site, feature_shape, hook_name, site_of, validate_hook_name

STATE_VERSION = 2
Kernel = Literal["gaussian", "median", "multiscale"]
Preset = Literal["tuned", "reference"]
#: settings each preset fills in (any explicitly passed value wins)
PRESETS: dict[str, dict[str, Any]] = {
    # chosen on the val split (docs/results_earlier.md): keeps the gates open on small contrast sets
    # gates started from each attribute's mean-difference probe, and penalty weights on the scale of the MMD term
    # (median-bandwidth MMD^2 of a few-sigma shift is ~0.05 in d = 576: lambda 0.1 shut every gate); measured on
    # the planted-attribute suite (benchmarks/planted.py, docs/methods/mat_steer.md)
    "tuned": {"kernel": "median", "init": "mean_diff", "lr": 3e-3, "lambdas": (0.02, 0.001, 0.1), "standardize": True,
              "val_fraction": 0.1, "patience": 10, "steps_per_epoch": "largest", "gate_init": "probe",
              "gate_scale": 8.0},
    # the reference code at HEAD 92de352 (validation/steering.py)
    "reference": {"kernel": "gaussian", "init": "random", "lr": 1e-3, "lambdas": (0.9, 0.9, 0.1),
                  "standardize": False, "val_fraction": 0.0, "patience": None, "steps_per_epoch": "smallest",
                  "gate_init": "random", "gate_scale": 2.0},
}
"""The settings each preset of [`MatSteer.fit()`][tl_steer.methods.mat_steer.MatSteer.fit] fills in (an explicitly passed value wins): ``tuned`` (chosen on val) and ``reference`` (the reference code's)."""


def _check_fit_inputs(
    positive: Mapping[str, Tensor], negative: Mapping[str, Tensor], cfg: dict[str, Any],
    lambdas: tuple[float, ...], per_head: bool,
) -> tuple[str, ...]:
    attrs = tuple(positive)
    if not attrs:
        raise SteeringError("MatSteer.fit needs at least one attribute")
    if set(attrs) != set(negative):
        raise SteeringError(
            f"positive and negative must have the same attributes, got {sorted(positive)} vs {sorted(negative)}"
        )
    if len(lambdas) != 3:
        raise SteeringError(f"lambdas must be (preserve, sparse, ortho), got {lambdas}")
    if cfg["kernel"] not in ("gaussian", "median", "multiscale"):
        raise SteeringError(f"kernel must be 'gaussian', 'median' or 'multiscale', got {cfg['kernel']!r}")
    if cfg["init"] not in ("random", "mean_diff"):
        raise SteeringError(f"init must be 'random' (the paper) or 'mean_diff', got {cfg['init']!r}")
    if not 0.0 <= cfg["val_fraction"] < 1.0:
        raise SteeringError(f"val_fraction must be in [0, 1), got {cfg['val_fraction']}")
    if cfg["steps_per_epoch"] not in ("largest", "smallest"):
        raise SteeringError(f"steps_per_epoch must be 'largest' or 'smallest', got {cfg['steps_per_epoch']!r}")
    first = positive[attrs[0]]
    if not isinstance(first, Tensor) or not first.is_floating_point() or first.ndim < 2:
        got = f"{tuple(first.shape)} {first.dtype}" if isinstance(first, Tensor) else type(first).__name__
        raise ShapeError(f"positive[{attrs[0]!r}] must be a float (n, *feature) tensor, got {got}")
    feat = tuple(first.shape[1:])
    for side, sets in (("positive", positive), ("negative", negative)):
        for a in attrs:
            x = sets[a]
            if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 2 or tuple(x.shape[1:]) != feat:
                got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise ShapeError(f"{side}[{a!r}] must be (n, {', '.join(map(str, feat))}) like the others, got {got}")
            if x.shape[0] < 2:
                raise SteeringError(f"{side}[{a!r}] has {x.shape[0]} rows; MAT-Steer needs at least 2 per side")
            ensure_finite({f"{side}[{a!r}]": x}, "MatSteer.fit")
    for a in attrs:
        if torch.equal(positive[a].float().mean(0), negative[a].float().mean(0)):
            raise SteeringError(
                f"MatSteer.fit: positive[{a!r}] and negative[{a!r}] have the same mean, so the contrast carries no "
                "direction (identical texts on both sides?); check the contrast set"
            )
    if per_head and len(feat) != 2:
        raise ShapeError(f"per_head=True needs (n, head, d_head) activations (hook_z), got feature shape {feat}")
    return attrs


def _check_numbers(epochs: Any, batch_size: Any, seed: Any, lr: Any, sigma: Any, patience: Any, lambdas: Any) -> None:
    """Counts are ints >= 1, rates positive finite numbers, lambdas three finite numbers >= 0."""
    check_int(epochs, "MatSteer.fit: epochs", 1)
    check_int(batch_size, "MatSteer.fit: batch_size", 1)
    check_int(seed, "MatSteer.fit: seed", 0)
    check_int(patience, "MatSteer.fit: patience", 1, optional=True)
    for name, v in (("lr", lr), ("sigma", sigma)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise SteeringError(f"MatSteer.fit: {name} must be a positive finite number, got {v!r}")
    if isinstance(lambdas, (str, bytes)) or not isinstance(lambdas, Sequence) or len(lambdas) != 3 or any(
            isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0 for x in lambdas):
        raise SteeringError(f"MatSteer.fit: lambdas must be three finite numbers >= 0 (preserve, sparse, ortho), got {lambdas!r}")


def _check_choices(cfg: dict[str, Any], **flags: Any) -> None:
    """String choices are among the allowed ones, flags are bools, val_fraction a number in [0, 1)."""
    allowed = {"kernel": ("gaussian", "median", "multiscale"), "init": ("random", "mean_diff"),
               "steps_per_epoch": ("largest", "smallest"), "gate_init": ("random", "probe", "dual")}
    for key, options in allowed.items():
        if not isinstance(cfg[key], str) or cfg[key] not in options:
            raise SteeringError(f"MatSteer.fit: {key} must be one of {options}, got {cfg[key]!r}")
    gs = cfg["gate_scale"]
    if isinstance(gs, bool) or not isinstance(gs, (int, float)) or not math.isfinite(gs) or gs <= 0:
        raise SteeringError(f"MatSteer.fit: gate_scale must be a positive finite number, got {gs!r}")
    vf = cfg["val_fraction"]
    if isinstance(vf, bool) or not isinstance(vf, (int, float)) or not 0.0 <= vf < 1.0:
        raise SteeringError(f"MatSteer.fit: val_fraction must be a number in [0, 1), got {vf!r}")
    for name, v in {**flags, "standardize": cfg["standardize"]}.items():
        if not isinstance(v, bool):
            raise SteeringError(f"MatSteer.fit: {name} must be True or False, got {v!r}")


@dataclass
class FitHistory:
    """What [`MatSteer.fit()`][tl_steer.methods.mat_steer.MatSteer.fit] did: one dict per epoch (loss terms, MMD, mean pairwise distance, val loss)."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    bandwidths: list[float] = field(default_factory=list)  #: kernel bandwidths (per group for 'median')
    init_pair_dist: float = float("nan")  #: mean distance positive <-> negative before training
    seconds: float = 0.0

    def column(self, key: str) -> list[float]:
        """One logged quantity over all epochs."""
        return [e[key] for e in self.epochs if key in e]


def _resolve_config(preset: Any, patience: Any, **given: Any) -> dict[str, Any]:
    """The preset's settings with every explicitly passed one (not None; ``patience`` unless ``"preset"``) on top."""
    if not isinstance(preset, str) or preset not in PRESETS:
        raise SteeringError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    if patience != "preset":
        given["patience"] = patience
    return {**PRESETS[preset], **{k: v for k, v in given.items() if v is not None or k == "patience"}}


def _split(
    positive: Mapping[str, Tensor], negative: Mapping[str, Tensor], attrs: tuple[str, ...], val_fraction: float,
    per_head: bool, device: torch.device, gen: torch.Generator,
) -> tuple[dict[str, list[Tensor]], dict[str, list[Tensor]]]:
    """Per side and attribute, float32 rows grouped as ``(n, head, d)`` (one group unless per head), split into
    train and validation rows (seeded)."""
    train: dict[str, list[Tensor]] = {"pos": [], "neg": []}
    val: dict[str, list[Tensor]] = {"pos": [], "neg": []}
    for key, sets in (("pos", positive), ("neg", negative)):
        for a in attrs:
            x = sets[a].detach().to(device=device, dtype=torch.float32)
            tr, va = F.split_train_val(x if per_head else x.reshape(x.shape[0], 1, -1), val_fraction, gen)
            train[key].append(tr)
            val[key].append(va)
    return train, val


def _start_history(
    train: dict[str, list[Tensor]], sigmas: Tensor, kernel: str, sigma: float, hook_name: str
) -> FitHistory:
    """The history with the kernel bandwidths and the mean positive-negative distance; warns when a fixed Gaussian
    bandwidth makes every kernel value ~0 (the MMD gradient then vanishes)."""
    history = FitHistory(bandwidths=[float(x) for x in sigmas.flatten()[:16]])
    with torch.no_grad():
        m = min(256, *(x.shape[0] for x in train["pos"] + train["neg"]))
        p0 = torch.stack([x[:m] for x in train["pos"]]).transpose(1, 2)
        n0 = torch.stack([x[:m] for x in train["neg"]]).transpose(1, 2)
        history.init_pair_dist = float(F.sq_dists(p0, n0).sqrt().mean())
    if kernel == "gaussian" and math.exp(-(history.init_pair_dist**2) / (2 * sigma**2)) < 1e-4:
        warnings.warn(
            f"MatSteer.fit at {hook_name!r}: the mean distance between positive and negative activations is "
            f"{history.init_pair_dist:.3g} but the Gaussian kernel bandwidth is sigma={sigma}; kernel values are "
            "~0 and the MMD gradient vanishes. Use kernel='median' (CLI: --kernel median) or the tuned preset.",
            stacklevel=3,
        )
    return history


def _initial_params(
    train: dict[str, list[Tensor]], every: Tensor, cfg: dict[str, Any], gen: torch.Generator
) -> tuple[tuple[Tensor, Tensor, Tensor], Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]]:
    """The trainable ``(theta, w, b)`` (standardised when ``cfg["standardize"]``: same function class and loss, gate
    logits start O(1)) and the map back to the activation's own units."""
    if cfg["standardize"]:
        mu, scale = every.mean(0), every.std(0).clamp_min(1e-6)
    else:
        mu, scale = torch.zeros_like(every[0]), torch.ones_like(every[0])
    diffs = torch.stack([p.mean(0) - q.mean(0) for p, q in zip(train["pos"], train["neg"], strict=True)]) / scale
    theta0, w0, b0 = F.init_params(len(train["pos"]), diffs, cfg["init"], gen)
    if cfg["gate_init"] in ("probe", "dual"):  # each gate starts as a mean-difference probe (see F.probe_gates)
        w0, b0 = F.probe_gates([(x - mu) / scale for x in train["pos"]], [(x - mu) / scale for x in train["neg"]],
                               cfg["gate_scale"], rest="mean" if cfg["gate_init"] == "probe" else "span")
    params = tuple(t.clone().requires_grad_() for t in (theta0, w0, b0))

    def native(theta: Tensor, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return F.to_native(theta, w, b, mu, scale)

    return params, native  # type: ignore[return-value]


def _train(
    train: dict[str, list[Tensor]], val: dict[str, list[Tensor]], params: tuple[Tensor, ...], native: Callable,
    cfg: dict[str, Any], sigmas: Tensor, lambdas3: tuple[float, ...], rescale: bool, bs: int, steps: int,
    gen: torch.Generator, epochs: int, history: FitHistory, desc: str, progress: bool,
    log: Callable[[dict[str, float]], None] | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Adam over ``epochs`` (held-out early stopping when there are validation rows); logs each epoch in
    ``history`` and returns the best-validation parameters in native units."""
    use_val = all(v.shape[0] >= 2 for side in val.values() for v in side)
    opt = torch.optim.Adam(params, lr=cfg["lr"])
    best: tuple[float, Any] = (float("inf"), None)
    bad = 0
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        te = time.perf_counter()
        row = {"epoch": float(epoch), **F.run_epoch(train["pos"], train["neg"], params, native, opt, sigmas,
                                                     lambdas3, rescale, bs, steps, gen)}
        if use_val:
            row.update(F.evaluate(val["pos"], val["neg"], native(*params), sigmas, lambdas3, rescale, bs))
        row["seconds"] = time.perf_counter() - te
        history.epochs.append(row)
        if log is not None:
            log(row)
        bar.set_postfix(loss=f"{row['loss']:.4g}", mmd=f"{row['mmd']:.3g}")
        score = row.get("val_loss", row["loss"])
        if score < best[0] - 1e-7:
            with torch.no_grad():
                best = (score, tuple(p.detach().clone() for p in native(*params)))
            history.best_epoch, bad = epoch, 0
        else:
            bad += 1
            if use_val and cfg["patience"] is not None and bad >= cfg["patience"]:
                history.stopped_early = True
                break
    if use_val and best[1] is not None:
        return best[1]
    history.best_epoch = len(history.epochs) - 1
    with torch.no_grad():
        return native(*params)


def _site_name(hook_name: str) -> str | None:
    try:
        return site_of(hook_name)[1].value
    except HookNameError:
        return None


@dataclass(frozen=True, eq=False, repr=False)
class MatSteer(Described):
    """Gated multi-attribute steering at one hook.

    Layouts (``per_head``):

    * ``per_head=False`` (default): the whole trailing feature is one vector (``d_model``, ``d_mlp``, or
      ``n_heads * d_head`` flattened for ``hook_z``). ``theta``, ``w``: ``(attr, d)``; ``b``: ``(attr,)``;
      the norm is kept over the whole flattened feature.
    * ``per_head=True`` (``hook_z`` only): every head is its own MAT-Steer with its own gates.
      ``theta``, ``w``: ``(attr, head, d_head)``; ``b``: ``(attr, head)``; the norm is kept per head.
    """

    hook_name: str
    theta: Float[Tensor, "attr *dims"]
    w: Float[Tensor, "attr *dims"]
    b: Float[Tensor, "attr *heads"]
    attributes: tuple[str, ...]
    rescale: bool = True
    per_head: bool = False
    strength: float = 1.0
    feature_shape: tuple[int, ...] | None = None  #: trailing activation shape it was fitted on
    fit_config: dict[str, Any] = field(default_factory=dict)
    #: what the fit did, epoch by epoch (``None`` for a loaded or hand-built method; not saved, not compared)
    history: FitHistory | None = field(default=None, compare=False, repr=False)
    method: ClassVar[str] = "mat-steer"
    state: ClassVar[str] = "mat_steer"

    def __post_init__(self) -> None:
        object.__setattr__(self, "strength", as_strengths(self.strength))
        ensure_finite({"theta": self.theta, "w": self.w, "b": self.b}, f"MatSteer at {self.hook_name!r}")
        object.__setattr__(self, "attributes", tuple(self.attributes))
        if self.feature_shape is not None:
            object.__setattr__(self, "feature_shape", tuple(int(s) for s in self.feature_shape))
        t = len(self.attributes)
        want_dims = 3 if self.per_head else 2
        if self.theta.ndim != want_dims or self.w.shape != self.theta.shape:
            raise ShapeError(
                f"MatSteer at {self.hook_name!r}: theta {tuple(self.theta.shape)} and w {tuple(self.w.shape)} must be "
                f"equal and {'(attr, head, d_head)' if self.per_head else '(attr, d)'} (per_head={self.per_head})"
            )
        if self.theta.shape[0] != t or tuple(self.b.shape) != tuple(self.theta.shape[:-1]):
            raise ShapeError(
                f"MatSteer at {self.hook_name!r}: {t} attributes {self.attributes} but theta {tuple(self.theta.shape)}, "
                f"b {tuple(self.b.shape)} (b must be {tuple(self.theta.shape[:-1])})"
            )
        if len(set(self.attributes)) != t:
            raise SteeringError(f"MatSteer attribute names must be unique, got {self.attributes}")
        if self.feature_shape is not None:
            if self.per_head and self.feature_shape != tuple(self.theta.shape[1:]):
                raise ShapeError(f"per-head MatSteer: feature_shape {self.feature_shape} != theta {tuple(self.theta.shape)}")
            if not self.per_head and math.prod(self.feature_shape) != self.theta.shape[-1]:
                raise ShapeError(f"MatSteer: feature_shape {self.feature_shape} does not flatten to d={self.theta.shape[-1]}")

    def _norms(self) -> str:
        norms = "/".join(f"{float(n):.3g}" for n in self.theta.flatten(1).norm(dim=1))
        return f"attributes={list(self.attributes)}, |theta|={norms}" + (", per_head" if self.per_head else "")

    # ---------------------------------------------------------------- apply
    def _grouped(self, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        theta, w, b = (p.to(device=device, dtype=dtype) for p in (self.theta, self.w, self.b))
        if not self.per_head:
            theta, w, b = theta[:, None], w[:, None], b[:, None]
        return theta, w, b

    def _check(self, activation: Tensor, hook: Any) -> None:
        name = getattr(hook, "name", hook)
        if self.feature_shape is not None:
            if tuple(activation.shape[2:]) != self.feature_shape or activation.ndim < 3:
                raise ShapeError(
                    f"MatSteer at hook {name!r} expects (batch, pos, {', '.join(map(str, self.feature_shape))}) "
                    f"but got {tuple(activation.shape)}. Attach it to the site it was fitted on ({self.hook_name!r})."
                )
        elif self.per_head:
            if activation.ndim != 4 or tuple(activation.shape[2:]) != tuple(self.theta.shape[1:]):
                raise ShapeError(f"per-head MatSteer at {name!r} expects (batch, pos, {tuple(self.theta.shape[1:])}), got {tuple(activation.shape)}")
        elif activation.ndim < 3 or math.prod(activation.shape[2:]) != self.theta.shape[-1]:
            raise ShapeError(f"MatSteer at {name!r} expects (batch, pos, *feature) with {self.theta.shape[-1]} features, got {tuple(activation.shape)}")

    def _rows(self, activation: Tensor) -> Tensor:
        x = activation.float() if activation.dtype in (torch.float16, torch.bfloat16) else activation
        if self.per_head:
            return einops.rearrange(x, "batch pos head d -> (batch pos) head d")
        return x.reshape(x.shape[0] * x.shape[1], 1, -1)

    @property
    def rows(self) -> int | None:
        """The batch size per-row strengths are tied to (None for one strength)."""
        return len(self.strength) if isinstance(self.strength, Tensor) else None

    @typed
    def __call__(self, activation: Float[Tensor, "batch pos *feature"], hook: Any = None) -> Float[Tensor, "batch pos *feature"]:
        self._check(activation, hook)
        x = self._rows(activation)
        theta, w, b = self._grouped(x.dtype, x.device)
        coef = row_scale(self.strength, activation, hook)
        if isinstance(coef, Tensor):  # per-row strengths: one per (batch, pos) row of x
            coef = coef.reshape(-1, 1).expand(activation.shape[0], activation.shape[1]).reshape(-1, 1, 1).to(x.dtype)
        out = F.edit(x, theta, w, b, coef, self.rescale)
        return out.reshape(activation.shape).to(activation.dtype)

    @typed
    def gates(self, activation: Float[Tensor, "batch pos *feature"]) -> Float[Tensor, "batch pos *gate"]:
        """Gate values in [0, 1]: ``(batch, pos, attr)``, or ``(batch, pos, head, attr)`` when ``per_head``."""
        self._check(activation, None)
        x = self._rows(activation)
        theta, w, b = self._grouped(x.dtype, x.device)
        g = F.gates(x, w, b)
        bsz, pos = activation.shape[:2]
        if self.per_head:
            return einops.rearrange(g, "(batch pos) head attr -> batch pos head attr", batch=bsz, pos=pos)
        return einops.rearrange(g, "(batch pos) 1 attr -> batch pos attr", batch=bsz, pos=pos)

    def with_strength(self, strength: float) -> MatSteer:
        """The same fitted method at another strength (no refitting)."""
        return replace(self, strength=strength)

    def relative(self, fraction: float) -> MatSteer:
        """The strength at which each attribute's full edit ``strength * theta_t`` (before the norm rescale) has
        ``fraction`` of the mean activation norm at the site, recorded at fit time: a strength that carries over
        between models whose activation norms differ."""
        norm = self.fit_config.get("site_norm")
        if not norm:
            raise SteeringError("relative strengths need fit_config['site_norm'], recorded by MatSteer.fit")
        theta = float(self.theta.flatten(1).norm(dim=1).mean().clamp_min(1e-12))
        return self.with_strength(as_strength(fraction, "fraction") * float(norm) / theta)

    def at(self, hook_name: str, feature_shape: tuple[int, ...]) -> MatSteer:
        """The same parameters applied at another hook whose flattened feature has the same width: the reference's
        design (fitted on ``resid_pre`` features, applied to the attention output before ``o_proj``, i.e.
        ``attn.hook_z`` flattened; ``d_model == n_heads * d_head`` on Llama-style models). Gates are then computed
        on the edit site's activation, as the reference's intervener does."""
        if self.per_head or math.prod(feature_shape) != self.theta.shape[-1]:
            raise ShapeError(
                f"MatSteer.at({hook_name!r}): the edit site's feature {tuple(feature_shape)} must flatten to the fitted "
                f"width {self.theta.shape[-1]} (and per_head must be False)"
            )
        cfg = {**self.fit_config, "read_hook": self.fit_config.get("read_hook", self.hook_name)}
        return replace(self, hook_name=hook_name, feature_shape=tuple(feature_shape), fit_config=cfg)

    def hook_names(self) -> list[str]:
        """The hooks this method edits, in layer order."""
        return [self.hook_name]

    def to(self, device: Any) -> MatSteer:
        """The same method with its tensors on ``device``."""
        return replace(self, theta=self.theta.to(device), w=self.w.to(device), b=self.b.to(device))

    def check_model(self, model: TransformerBridge) -> None:
        """Raise unless ``model`` has the hook and its activation shape matches the fitted one."""
        validate_hook_name(model, self.hook_name)
        site = _site_name(self.hook_name)
        if site is not None and self.feature_shape is not None:
            have = tuple(feature_shape(model, site))
            if have != self.feature_shape:
                raise ShapeError(
                    f"MatSteer was fitted on {self.hook_name!r} with features {self.feature_shape}, but this model's "
                    f"{site} activations are {have}: another model? Refit on this model."
                )

    def affine_edits(self, strength: float | None = None) -> dict:
        """Refused: MAT-Steer's edit is not a fixed weight change (see the raised message)."""
        raise SteeringError(
            "MAT-Steer's edit depends on the input: each gate sigma(w.a + b) opens per token and the sum is rescaled "
            "to the norm of a, so no fixed change of the weights reproduces it. Serve it with hooks instead: "
            "tl_steer.fast.hf_steer on the plain Hugging Face model, or the lm-eval plug-in (--model tl_steer)"
        )

    def hooks(self, model: TransformerBridge, positions: PositionSpec | None = None, strength: float | None = None) -> HookList:
        """Hooks that apply the gated, norm-preserving MAT-Steer edit at the method's hook.

        Args:
            model: the ``TransformerBridge`` the hooks will run on (its hook names are checked).
            positions: which tokens to edit: a scope such as ``"all"`` (default: every real token, never padding),
                ``"prompt"``, ``"last_prompt"``, ``"generated"``, ``"last"``, or a union ``"last_prompt+generated"``.
            strength: overrides the fitted strength for these hooks only; a ``(batch,)`` tensor or list gives each
                batch row its own strength (a sweep in one batch).

        Returns:
            TransformerLens' own hook list ``[(hook_name, fn), ...]``: pass it to
            [`tl_steer.steer()`][tl_steer.steer], ``model.hooks(fwd_hooks=...)`` or ``run_with_hooks``.
        """
        self.check_model(model)
        fn = self if strength is None else self.with_strength(strength)
        return [(self.hook_name, scoped(fn, positions or Positions.ALL, model))]

    # ---------------------------------------------------------------- save / load
    def to_state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """``(tensors, config)`` for [`tl_steer.io.save()`][tl_steer.io.save]: the tensors go to safetensors, the config to JSON."""
        if isinstance(self.strength, Tensor):
            raise SteeringError("save a MatSteer with one strength, not per-row strengths: method.with_strength(s)")
        tensors = {"theta": self.theta.detach().cpu(), "w": self.w.detach().cpu(), "b": self.b.detach().cpu()}
        config = {
            "version": STATE_VERSION, "hook_name": self.hook_name, "hook_names": [self.hook_name],
            "site": _site_name(self.hook_name), "attributes": list(self.attributes), "rescale": self.rescale,
            "per_head": self.per_head, "strength": self.strength,
            "feature_shape": list(self.feature_shape) if self.feature_shape is not None else None,
            "d": int(self.theta.shape[-1]),
            "fit_config": self.fit_config,
        }
        return tensors, config

    @classmethod
    def from_state(cls, tensors: dict[str, Tensor], config: dict[str, Any]) -> MatSteer:
        """The inverse of [`tl_steer.methods.mat_steer.MatSteer.to_state()`][tl_steer.methods.mat_steer.MatSteer.to_state] (what [`tl_steer.io.load_method()`][tl_steer.io.load_method] calls)."""
        if config.get("version") not in (1, STATE_VERSION):
            raise ManifestError(f"mat_steer state version {config.get('version')!r}, this tl_steer reads 1 and {STATE_VERSION}")
        missing = {"theta", "w", "b"} - set(tensors)
        if missing:
            raise ManifestError(f"mat_steer tensors lack {sorted(missing)}; the file is corrupt")
        try:
            fs = config.get("feature_shape")
            return cls(
                hook_name=config["hook_name"], theta=tensors["theta"], w=tensors["w"], b=tensors["b"],
                attributes=tuple(config["attributes"]), rescale=bool(config["rescale"]),
                per_head=bool(config["per_head"]), strength=saved_strength(config, "coef"),
                feature_shape=tuple(fs) if fs is not None else None, fit_config=dict(config.get("fit_config") or {}),
            )
        except (KeyError, ShapeError) as e:
            raise ManifestError(f"mat_steer manifest does not match its tensors ({e}); the file is corrupt") from None

    # ---------------------------------------------------------------- fit
    @classmethod
    @torch.enable_grad()  # fitting needs gradients even when the caller runs under torch.no_grad()
    def fit(
        cls,
        positive: Mapping[str, Tensor],
        negative: Mapping[str, Tensor],
        hook_name: str,
        *,
        preset: Preset = "tuned",
        per_head: bool = False,
        seed: int = 0,
        epochs: int = 100,
        batch_size: int = 16,
        lr: float | None = None,
        lambdas: Sequence[float] | None = None,
        kernel: Kernel | None = None,
        sigma: float = 2.0,
        init: Literal["random", "mean_diff"] | None = None,
        standardize: bool | None = None,
        val_fraction: float | None = None,
        patience: int | None | Literal["preset"] = "preset",
        steps_per_epoch: Literal["largest", "smallest"] | None = None,
        gate_init: Literal["random", "probe", "dual"] | None = None,
        gate_scale: float | None = None,
        rescale: bool = True,
        strength: float = 1.0,
        device: Any = None,
        progress: bool = True,
        log: Callable[[dict[str, float]], None] | None = None,
    ) -> MatSteer:
        """Fit MAT-Steer on activations. Returns the method; ``method.history`` is the
        [`FitHistory`][tl_steer.methods.mat_steer.FitHistory] of this fit (not saved with it).

        Polarity: ``positive[attr]`` holds activations of the behaviour to steer TOWARD (truthful, non-toxic,
        unbiased); ``negative[attr]`` those to steer AWAY from. The gates learn to fire on negative-like tokens and
        the edit moves them onto the positive distribution. Each tensor is ``(n, *feature)``.

        ``preset`` fills every setting left at ``None`` (see [`PRESETS`][tl_steer.methods.mat_steer.PRESETS]): ``"tuned"`` (default: median-heuristic
        kernel, mean-difference init, lr 3e-3, lambdas 0.1, standardised optimisation, held-out early stopping) or
        ``"reference"`` (the reference code: Gaussian sigma 2, random init, lr 1e-3, lambdas 0.9/0.9/0.1, raw
        parametrisation, steps per epoch from the smallest set, no early stopping).
        ``lambdas = (l1, l2, l3)``: preservation (g^2 on positive), sparsity (g on negative), orthogonality.
        ``val_fraction`` of each set is held out; training stops after ``patience`` epochs without a lower
        validation loss and the best-validation parameters are returned.
        """
        t0 = time.perf_counter()
        cfg = _resolve_config(preset, patience, lr=lr, lambdas=lambdas, kernel=kernel, init=init,
                              standardize=standardize, val_fraction=val_fraction, steps_per_epoch=steps_per_epoch,
                              gate_init=gate_init, gate_scale=gate_scale)
        _check_numbers(epochs=epochs, batch_size=batch_size, seed=seed, lr=cfg["lr"], sigma=sigma,
                       patience=cfg["patience"], lambdas=cfg["lambdas"])
        _check_choices(cfg, per_head=per_head, rescale=rescale, progress=progress)
        strength = as_strength(strength)
        if not isinstance(positive, Mapping) or not isinstance(negative, Mapping):
            raise SteeringError(
                "MatSteer.fit takes positive and negative as dicts {attribute: (n, *feature) tensor}, got "
                f"{type(positive).__name__} and {type(negative).__name__}"
            )
        lambdas3 = tuple(float(x) for x in cfg["lambdas"])
        attrs = _check_fit_inputs(positive, negative, cfg, lambdas3, per_head)
        device = torch.device(device if device is not None else positive[attrs[0]].device)
        gen = torch.Generator().manual_seed(seed)
        train, val = _split(positive, negative, attrs, cfg["val_fraction"], per_head, device, gen)
        every = torch.cat(train["pos"] + train["neg"])
        sigmas = F.bandwidths(every, cfg["kernel"], sigma, gen)
        history = _start_history(train, sigmas, cfg["kernel"], sigma, hook_name)
        params, native = _initial_params(train, every, cfg, gen)
        sizes = [x.shape[0] for x in train["pos"] + train["neg"]]
        bs = min(batch_size, *sizes)
        steps = math.ceil((max(sizes) if cfg["steps_per_epoch"] == "largest" else min(sizes)) / bs)
        theta_f, w_f, b_f = _train(train, val, params, native, cfg, sigmas, lambdas3, rescale, bs, steps, gen,
                                   epochs, history, f"MatSteer.fit {hook_name}", progress, log)
        history.seconds = time.perf_counter() - t0
        if not per_head:
            theta_f, w_f, b_f = theta_f[:, 0], w_f[:, 0], b_f[:, 0]
        last = history.epochs[history.best_epoch] if history.epochs else {}
        config = {
            "paper": "MAT-Steer (arXiv 2502.12446)", "preset": preset, "seed": seed, "epochs": epochs,
            "epochs_run": len(history.epochs), "best_epoch": history.best_epoch, "batch_size": bs, "sigma": sigma,
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}, "lambdas": list(lambdas3),
            "bandwidths": history.bandwidths,
            "site_norm": float(every.flatten(1).norm(dim=1).mean()),  # mean activation norm: see relative()
            "n_positive": {a: int(positive[a].shape[0]) for a in attrs},
            "n_negative": {a: int(negative[a].shape[0]) for a in attrs},
            "final": {k: last[k] for k in ("loss", "mmd", "val_loss") if k in last},
        }
        return cls(hook_name=hook_name, theta=theta_f.clone(), w=w_f.clone(), b=b_f.clone(), attributes=attrs,
                   rescale=rescale, per_head=per_head, strength=strength, feature_shape=tuple(positive[attrs[0]].shape[1:]),
                   fit_config=config, history=history)

    @classmethod
    def fit_texts(
        cls,
        model: TransformerBridge,
        contrast_sets: Sequence[Any],
        hook_name: str,
        *,
        read: Literal["last", "mean"] | int = "last",
        collect_batch_size: int = 8,
        **fit_kwargs: Any,
    ) -> MatSteer:
        """Collect activations of [`ContrastSet`][tl_steer.pairs.ContrastSet] texts at ``hook_name`` and [`tl_steer.methods.mat_steer.MatSteer.fit()`][tl_steer.methods.mat_steer.MatSteer.fit].

        Each set is one attribute; ``read`` says where each text's activation is read.
        """
        from ..pairs import ContrastSet

        validate_hook_name(model, hook_name)
        for cs in contrast_sets:
            if not isinstance(cs, ContrastSet):
                raise SteeringError(f"fit_texts expects ContrastSet objects, got {type(cs).__name__}")
        if len({cs.attribute for cs in contrast_sets}) != len(contrast_sets):
            raise SteeringError(f"two contrast sets share the attribute name: {[cs.attribute for cs in contrast_sets]}")
        opts = FitOptions(read=read, read_batch_size=collect_batch_size, progress=fit_kwargs.get("progress", True))
        pos, neg = read_activations(model, list(contrast_sets), [hook_name], opts)  # the one reading path
        method = cls.fit({a: v[hook_name] for a, v in pos.items()}, {a: v[hook_name] for a, v in neg.items()},
                         hook_name, **fit_kwargs)
        cfg = {**method.fit_config, "read": read if isinstance(read, str) else int(read)}
        return replace(method, fit_config=cfg)


def _reads(model: TransformerBridge, opts: FitOptions) -> list[str]:
    return [hook_name(opts.layer_of(model.cfg.n_layers), opts.site or Site.RESID_PRE)]


def _fit(positive: Any, negative: Any, opts: FitOptions, ctx: FitContext) -> MatSteer:
    (name,) = next(iter(positive.values())).keys()
    extra = dict(opts.extra)
    edit_site = extra.pop("edit_site", None)
    fitted = MatSteer.fit(
        {a: v[name] for a, v in positive.items()}, {a: v[name] for a, v in negative.items()}, name,
        seed=opts.seed, progress=opts.progress, **extra,
    )
    if edit_site is not None:
        site = Site(edit_site)
        fitted = fitted.at(hook_name(site_of(name)[0], site), ctx.feature_shapes[site.value])
    return fitted


SPEC = MethodSpec(
    name=MatSteer.method,
    summary="MAT-Steer: a + s*sum_t sigmoid(w_t.a+b_t) theta_t, norm kept; one gated vector per attribute",
    cls=MatSteer,
    reads=_reads,
    fit=_fit,
    strength="s scales the gated sum (1 = the paper)",
    default_positions="all",
    grid=(0.5, 1.0, 2.0, 4.0),
    options=(
        FitOption("preset", str, "fit settings: tuned (default) or reference (the reference code's)",
                  tuple(PRESETS)),
        FitOption("kernel", str, "MMD kernel (default from the preset: median; reference: gaussian sigma 2)",
                  ("gaussian", "median", "multiscale")),
        FitOption("epochs", int, "training epochs (default 100)"),
        FitOption("lr", float, "Adam learning rate (default from the preset)"),
        FitOption("edit_site", str, "apply the fitted edit at another site of the same layer and width, e.g. z: "
                  "the reference fits on resid_pre and edits the attention output before o_proj", tuple(s.value for s in Site)),
    ),
    aliases=("matsteer", "mat_steer"),
)
