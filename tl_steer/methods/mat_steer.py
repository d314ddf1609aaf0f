"""MAT-Steer: gated multi-attribute steering (Nguyen, Prasad, Stengel-Eskin, Bansal, ACL 2025, arXiv 2502.12446).

Update rule at one hook site, for every token activation ``a`` and attributes ``t = 1..T``::

    g_t(a) = sigmoid(w_t . a + b_t)
    a'     = a + coef * sum_t g_t(a) theta_t
    a'    <- a' * ||a|| / ||a'||          (rescale=True, the paper's default: the edit only rotates a)

Fitting (:meth:`MatSteer.fit`) minimises, per mini-batch of ``batch_size`` desirable and ``batch_size``
undesirable activations of *every* attribute::

    sum_t MMD^2(desirable_t, edit(undesirable_t))      Gaussian-kernel MMD: move undesirable onto desirable
    + l1 * mean g(desirable)^2                          preservation: leave desirable tokens alone
    + l2 * mean g(undesirable)                          sparsity: few attributes fire per token
    + l3 * sum_{i<j} cos^2(theta_i, theta_j)            orthogonality: attributes do not interfere

with Adam (lr 1e-3, 100 epochs, lambdas 0.9 / 0.9 / 0.1, sigma 2.0: the reference code's defaults).

Differences from the reference code (``duykhuongnguyen/MAT-Steer``, ``validation/steering.py``) — see
``docs/methods/mat_steer.md`` for details:

* gradients are zeroed every step (the reference calls ``zero_grad`` once per epoch but ``step`` every batch, so
  gradients accumulate over the epoch: a bug);
* the MMD uses the mini-batch (linear time per epoch); the reference compares the *whole* per-task sets on
  every step (quadratic time and memory);
* features and edits come from the same hook site (the reference reads ``hidden_states[layer]``, i.e.
  ``resid_pre``, and edits attention head outputs);
* a median-heuristic or multi-bandwidth kernel is offered: sigma = 2 on raw activations whose pairwise distances
  are in the tens makes every kernel value ~0 and the MMD gradient vanishes;
* ``standardize=True`` optimises gates and theta in per-coordinate standardised coordinates (same function
  class and loss, exported in the paper's form): with the reference's raw parametrisation the gates start
  saturated on large-norm residual streams and die within a step;
* seeded, held-out early stopping, explicit polarity (``desirable`` / ``undesirable``).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import einops
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from .. import io
from .._typecheck import typed
from ..core import HookList, Positions, PositionSpec, scoped
from ..errors import HookNameError, ManifestError, ShapeError, SteeringError
from ..functional import mat_steer as F
from ..sites import feature_shape, site_of, validate_hook_name

STATE_VERSION = 1
Kernel = Literal["gaussian", "median", "multiscale"]
_MULTISCALE = (0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass
class FitHistory:
    """What :meth:`MatSteer.fit` did: one dict per epoch (loss terms, MMD, mean pairwise distance, val loss)."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    bandwidths: list[float] = field(default_factory=list)  #: kernel bandwidths (per group for 'median')
    init_pair_dist: float = float("nan")  #: mean distance desirable <-> undesirable before training
    seconds: float = 0.0

    def column(self, key: str) -> list[float]:
        return [e[key] for e in self.epochs if key in e]


def _site_name(hook_name: str) -> str | None:
    try:
        return site_of(hook_name)[1].value
    except HookNameError:
        return None


@io.register("mat_steer")
@dataclass(frozen=True, eq=False)
class MatSteer:
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
    coef: float = 1.0
    feature_shape: tuple[int, ...] | None = None  #: trailing activation shape it was fitted on
    fit_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
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

    def __repr__(self) -> str:
        return (
            f"MatSteer(hook_name={self.hook_name!r}, attributes={self.attributes}, theta={tuple(self.theta.shape)}, "
            f"per_head={self.per_head}, rescale={self.rescale}, coef={self.coef})"
        )

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

    @typed
    def __call__(self, activation: Float[Tensor, "batch pos *feature"], hook: Any = None) -> Float[Tensor, "batch pos *feature"]:
        self._check(activation, hook)
        x = self._rows(activation)
        theta, w, b = self._grouped(x.dtype, x.device)
        out = F.edit(x, theta, w, b, self.coef, self.rescale)
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

    def with_coef(self, coef: float) -> MatSteer:
        return replace(self, coef=float(coef))

    def hook_names(self) -> list[str]:
        return [self.hook_name]

    def to(self, device: Any) -> MatSteer:
        return replace(self, theta=self.theta.to(device), w=self.w.to(device), b=self.b.to(device))

    def check_model(self, model: Any) -> None:
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

    def hooks(self, model: Any, positions: PositionSpec = Positions.ALL, coef: float | None = None) -> HookList:
        """``[(hook_name, fn)]`` for ``run_with_hooks`` / ``model.hooks`` / :func:`tl_steer.steer`."""
        self.check_model(model)
        fn = self if coef is None else self.with_coef(coef)
        return [(self.hook_name, scoped(fn, positions, model))]

    # ---------------------------------------------------------------- save / load
    def to_state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors = {"theta": self.theta.detach().cpu(), "w": self.w.detach().cpu(), "b": self.b.detach().cpu()}
        config = {
            "version": STATE_VERSION, "hook_name": self.hook_name, "hook_names": [self.hook_name],
            "site": _site_name(self.hook_name), "attributes": list(self.attributes), "rescale": self.rescale,
            "per_head": self.per_head, "coef": self.coef,
            "feature_shape": list(self.feature_shape) if self.feature_shape is not None else None,
            "d": int(self.theta.shape[-1]), "position_scope": self.fit_config.get("positions"),
            "fit_config": self.fit_config,
        }
        return tensors, config

    @classmethod
    def from_state(cls, tensors: dict[str, Tensor], config: dict[str, Any]) -> MatSteer:
        if config.get("version") != STATE_VERSION:
            raise ManifestError(f"mat_steer state version {config.get('version')!r}, this tl_steer reads {STATE_VERSION}")
        missing = {"theta", "w", "b"} - set(tensors)
        if missing:
            raise ManifestError(f"mat_steer tensors lack {sorted(missing)}; the file is corrupt")
        for k in ("theta", "w", "b"):
            if not torch.isfinite(tensors[k]).all():
                raise ManifestError(f"mat_steer tensor {k!r} holds NaN or inf; the file is corrupt")
        try:
            fs = config.get("feature_shape")
            return cls(
                hook_name=config["hook_name"], theta=tensors["theta"], w=tensors["w"], b=tensors["b"],
                attributes=tuple(config["attributes"]), rescale=bool(config["rescale"]),
                per_head=bool(config["per_head"]), coef=float(config["coef"]),
                feature_shape=tuple(fs) if fs is not None else None, fit_config=dict(config.get("fit_config") or {}),
            )
        except (KeyError, ShapeError) as e:
            raise ManifestError(f"mat_steer manifest does not match its tensors ({e}); the file is corrupt") from None

    def save(self, path: Any, model: Any = None) -> Any:
        """``io.save`` with the fitted position scope in the manifest's ``extra``."""
        return io.save(self, path, model=model, position_scope=self.fit_config.get("positions"))

    @classmethod
    def load(cls, path: Any, model: Any = None, strict: bool = True) -> MatSteer:
        """``io.load`` that also checks the feature shape against ``model``."""
        method = io.load(path, model=model, expect="mat_steer", strict=strict)
        if model is not None:
            method.check_model(model)
        return method

    # ---------------------------------------------------------------- fit
    @classmethod
    def fit(
        cls,
        desirable: Mapping[str, Tensor],
        undesirable: Mapping[str, Tensor],
        hook_name: str,
        *,
        per_head: bool = False,
        seed: int = 0,
        epochs: int = 100,
        lr: float = 1e-3,
        batch_size: int = 16,
        lambdas: Sequence[float] = (0.9, 0.9, 0.1),
        kernel: Kernel = "gaussian",
        sigma: float = 2.0,
        rescale: bool = True,
        coef: float = 1.0,
        init: Literal["random", "mean_diff"] = "random",
        standardize: bool = True,
        val_fraction: float = 0.1,
        patience: int | None = 10,
        device: Any = None,
        progress: bool = True,
        log: Callable[[dict[str, float]], None] | None = None,
    ) -> tuple[MatSteer, FitHistory]:
        """Fit MAT-Steer on activations. Returns ``(method, history)``.

        Polarity: ``desirable[attr]`` holds activations of the behaviour to steer TOWARD (truthful, non-toxic,
        unbiased); ``undesirable[attr]`` those to steer AWAY from. The gates learn to fire on undesirable-like
        tokens and the edit moves them onto the desirable distribution. Each tensor is ``(n, *feature)``, the
        feature being the hook's trailing shape. For ToxiGen-style labels (1 = toxic), build the sets with
        :func:`tl_steer.pairs.from_labels` and ``desirable=0``.

        ``lambdas = (l1, l2, l3)``: preservation (g^2 on desirable), sparsity (g on undesirable),
        orthogonality. ``kernel``: ``"gaussian"`` (bandwidth ``sigma``, the paper), ``"median"`` (bandwidth = the
        median pairwise distance of the training data, per head when ``per_head``) or ``"multiscale"``
        (mean of Gaussians at 0.25..4 x that median). ``batch_size`` rows per side per attribute per step
        (capped by the smallest set); an epoch covers the largest set once, so its time grows linearly with n.
        ``val_fraction`` of each set is held out; training stops after ``patience`` epochs without a lower
        validation loss and the best-validation parameters are returned (``patience=None``: never stop early).
        """
        t0 = time.perf_counter()
        attrs = tuple(desirable)
        if not attrs:
            raise SteeringError("MatSteer.fit needs at least one attribute")
        if set(attrs) != set(undesirable):
            raise SteeringError(
                f"desirable and undesirable must have the same attributes, got {sorted(desirable)} vs {sorted(undesirable)}"
            )
        if len(lambdas) != 3:
            raise SteeringError(f"lambdas must be (preserve, sparse, ortho), got {tuple(lambdas)}")
        if kernel not in ("gaussian", "median", "multiscale"):
            raise SteeringError(f"kernel must be 'gaussian', 'median' or 'multiscale', got {kernel!r}")
        if init not in ("random", "mean_diff"):
            raise SteeringError(f"init must be 'random' (the paper) or 'mean_diff', got {init!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise SteeringError(f"val_fraction must be in [0, 1), got {val_fraction}")
        first = desirable[attrs[0]]
        feat = tuple(first.shape[1:])
        if device is None:
            device = first.device
        device = torch.device(device)
        for side, sets in (("desirable", desirable), ("undesirable", undesirable)):
            for a in attrs:
                x = sets[a]
                if not isinstance(x, Tensor) or x.ndim < 2 or tuple(x.shape[1:]) != feat:
                    got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                    raise ShapeError(f"{side}[{a!r}] must be (n, {', '.join(map(str, feat))}) like the others, got {got}")
                if x.shape[0] < 2:
                    raise SteeringError(f"{side}[{a!r}] has {x.shape[0]} rows; MAT-Steer needs at least 2 per side")
        if per_head and len(feat) != 2:
            raise ShapeError(f"per_head=True needs (n, head, d_head) activations (hook_z), got feature shape {feat}")

        def grouped(x: Tensor) -> Tensor:
            x = x.detach().to(device=device, dtype=torch.float32)
            return x if per_head else x.reshape(x.shape[0], 1, -1)

        gen = torch.Generator().manual_seed(seed)
        train: dict[str, list[Tensor]] = {"pos": [], "neg": []}
        val: dict[str, list[Tensor]] = {"pos": [], "neg": []}
        for key, sets in (("pos", desirable), ("neg", undesirable)):
            for a in attrs:
                x = grouped(sets[a])
                perm = torch.randperm(x.shape[0], generator=gen).to(device)
                n_val = int(math.floor(val_fraction * x.shape[0]))
                n_val = n_val if x.shape[0] - n_val >= 2 else 0
                val[key].append(x[perm[:n_val]])
                train[key].append(x[perm[n_val:]])
        use_val = all(v.shape[0] >= 2 for side in val.values() for v in side)
        n_groups, d = train["pos"][0].shape[1], train["pos"][0].shape[2]
        n_attr = len(attrs)

        # kernel bandwidths
        every = torch.cat(train["pos"] + train["neg"])
        med = F.median_distance(every, generator=gen)  # (g,)
        if kernel == "gaussian":
            sigmas = torch.full((n_groups, 1), float(sigma), device=device)
        elif kernel == "median":
            sigmas = med[:, None]
        else:
            sigmas = med[:, None] * torch.tensor(_MULTISCALE, device=device)
        history = FitHistory(bandwidths=[float(s) for s in sigmas.flatten()[:16]])
        with torch.no_grad():
            m = min(256, *(x.shape[0] for x in train["pos"] + train["neg"]))
            p0 = torch.stack([x[:m] for x in train["pos"]]).transpose(1, 2)
            n0 = torch.stack([x[:m] for x in train["neg"]]).transpose(1, 2)
            history.init_pair_dist = float(F.sq_dists(p0, n0).sqrt().mean())
        if kernel == "gaussian" and math.exp(-(history.init_pair_dist**2) / (2 * sigma**2)) < 1e-4:
            warnings.warn(
                f"MatSteer.fit at {hook_name!r}: the mean distance between desirable and undesirable activations is "
                f"{history.init_pair_dist:.3g} but the Gaussian kernel bandwidth is sigma={sigma}; kernel values are "
                "~0 and the MMD gradient vanishes. Use kernel='median' or kernel='multiscale'.",
                stacklevel=2,
            )

        # Parameters. With ``standardize`` the optimiser sees w~, b~, theta~ with
        #   w = w~ / s,  b = b~ - (w~ / s) . mu,  theta = s * theta~
        # (mu, s: per-coordinate mean and std of the training activations): the same function class and loss, but
        # gate logits start O(1) instead of saturated on large-norm residual streams.
        if standardize:
            mu = every.mean(0)  # (g, d)
            scale = every.std(0).clamp_min(1e-6)
        else:
            mu = torch.zeros(n_groups, d, device=device)
            scale = torch.ones(n_groups, d, device=device)
        bound = 1.0 / math.sqrt(d)
        if init == "random":  # the reference: theta ~ N(0, 1), gates like nn.Linear
            theta = torch.randn(n_attr, n_groups, d, generator=gen).to(device)
        else:
            theta = torch.stack([p.mean(0) - q.mean(0) for p, q in zip(train["pos"], train["neg"], strict=True)]) / scale
        theta = theta.clone().requires_grad_()
        w = ((torch.rand(n_attr, n_groups, d, generator=gen) * 2 - 1) * bound).to(device).requires_grad_()
        b = ((torch.rand(n_attr, n_groups, generator=gen) * 2 - 1) * bound).to(device).requires_grad_()

        def native() -> tuple[Tensor, Tensor, Tensor]:  # the paper's parametrisation
            w_n = w / scale
            return theta * scale, w_n, b - einops.einsum(w_n, mu, "attr g d, g d -> attr g")

        opt = torch.optim.Adam([theta, w, b], lr=lr)
        l1, l2, l3 = (float(x) for x in lambdas)

        bs = min(batch_size, *(x.shape[0] for x in train["pos"] + train["neg"]))
        n_max = max(x.shape[0] for x in train["pos"] + train["neg"])
        steps = math.ceil(n_max / bs)

        def stream(n: int, total: int) -> Tensor:  # cycle through fresh permutations of range(n)
            reps = math.ceil(total / n)
            return torch.cat([torch.randperm(n, generator=gen) for _ in range(reps)])[:total]

        def total_loss(parts: dict[str, Tensor]) -> Tensor:
            return parts["mmd"] + l1 * parts["preserve"] + l2 * parts["sparse"] + l3 * parts["ortho"]

        if use_val:
            bs_val = min(bs, *(x.shape[0] for x in val["pos"] + val["neg"]))
            steps_val = math.ceil(max(x.shape[0] for x in val["pos"] + val["neg"]) / bs_val)

            def val_batches():
                for s in range(steps_val):
                    idx = torch.arange(s * bs_val, (s + 1) * bs_val)
                    yield (torch.stack([x[(idx % x.shape[0]).to(device)] for x in val["pos"]]),
                           torch.stack([x[(idx % x.shape[0]).to(device)] for x in val["neg"]]))

        best = (float("inf"), None)
        bad = 0
        bar = tqdm(range(epochs), desc=f"MatSteer.fit {hook_name}", disable=not progress, leave=False)
        for epoch in bar:
            te = time.perf_counter()
            idx_pos = [stream(x.shape[0], steps * bs).to(device) for x in train["pos"]]
            idx_neg = [stream(x.shape[0], steps * bs).to(device) for x in train["neg"]]
            sums = dict.fromkeys(("loss", "mmd", "preserve", "sparse", "ortho", "pair_dist"), 0.0)
            for s in range(steps):
                sl = slice(s * bs, (s + 1) * bs)
                pos = torch.stack([x[i[sl]] for x, i in zip(train["pos"], idx_pos, strict=True)])
                neg = torch.stack([x[i[sl]] for x, i in zip(train["neg"], idx_neg, strict=True)])
                opt.zero_grad(set_to_none=True)  # every step (the reference zeroes once per epoch)
                parts = F.losses(pos, neg, *native(), sigmas, rescale)
                loss = total_loss(parts)
                loss.backward()
                opt.step()
                sums["loss"] += float(loss.detach())
                for k in ("mmd", "preserve", "sparse", "ortho", "pair_dist"):
                    sums[k] += float(parts[k].detach())
            row = {"epoch": float(epoch), **{k: v / steps for k, v in sums.items()}}
            if use_val:
                with torch.no_grad():
                    vs = dict.fromkeys(("loss", "mmd"), 0.0)
                    for vp, vn in val_batches():
                        parts = F.losses(vp, vn, *native(), sigmas, rescale)
                        vs["loss"] += float(total_loss(parts))
                        vs["mmd"] += float(parts["mmd"])
                row["val_loss"], row["val_mmd"] = vs["loss"] / steps_val, vs["mmd"] / steps_val
            row["seconds"] = time.perf_counter() - te
            history.epochs.append(row)
            if log is not None:
                log(row)
            bar.set_postfix(loss=f"{row['loss']:.4g}", mmd=f"{row['mmd']:.3g}")
            score = row.get("val_loss", row["loss"])
            if score < best[0] - 1e-7:
                with torch.no_grad():
                    best = (score, tuple(p.detach().clone() for p in native()))
                history.best_epoch = epoch
                bad = 0
            else:
                bad += 1
                if use_val and patience is not None and bad >= patience:
                    history.stopped_early = True
                    break
        if use_val and best[1] is not None:
            theta_f, w_f, b_f = best[1]
        else:
            with torch.no_grad():
                theta_f, w_f, b_f = native()
            history.best_epoch = len(history.epochs) - 1
        history.seconds = time.perf_counter() - t0
        if not per_head:
            theta_f, w_f, b_f = theta_f[:, 0], w_f[:, 0], b_f[:, 0]
        last = history.epochs[history.best_epoch] if history.epochs else {}
        config = {
            "method": "MAT-Steer (arXiv 2502.12446)", "seed": seed, "epochs": epochs, "epochs_run": len(history.epochs),
            "best_epoch": history.best_epoch, "lr": lr, "batch_size": bs, "lambdas": [l1, l2, l3], "kernel": kernel,
            "sigma": sigma, "init": init, "standardize": standardize, "bandwidths": history.bandwidths, "val_fraction": val_fraction, "patience": patience,
            "n_desirable": {a: int(desirable[a].shape[0]) for a in attrs},
            "n_undesirable": {a: int(undesirable[a].shape[0]) for a in attrs},
            "final": {k: last[k] for k in ("loss", "mmd", "val_loss") if k in last},
        }
        method = cls(
            hook_name=hook_name, theta=theta_f.clone(), w=w_f.clone(), b=b_f.clone(), attributes=attrs,
            rescale=rescale, per_head=per_head, coef=coef, feature_shape=feat, fit_config=config,
        )
        return method, history

    @classmethod
    def fit_texts(
        cls,
        model: Any,
        contrast_sets: Sequence[Any],
        hook_name: str,
        *,
        positions: Literal["last", "mean"] | int = "last",
        collect_batch_size: int = 8,
        **fit_kwargs: Any,
    ) -> tuple[MatSteer, FitHistory]:
        """Collect activations of :class:`~tl_steer.pairs.ContrastSet` texts at ``hook_name`` and :meth:`fit`.

        Each set's ``positive`` texts are the desirable side, ``negative`` the undesirable side.
        """
        from ..collect import collect
        from ..pairs import ContrastSet

        validate_hook_name(model, hook_name)
        desirable: dict[str, Tensor] = {}
        undesirable: dict[str, Tensor] = {}
        progress = fit_kwargs.get("progress", True)
        for cs in contrast_sets:
            if not isinstance(cs, ContrastSet):
                raise SteeringError(f"fit_texts expects ContrastSet objects, got {type(cs).__name__}")
            if cs.attribute in desirable:
                raise SteeringError(f"two contrast sets share the attribute name {cs.attribute!r}")
            kw = dict(positions=positions, batch_size=collect_batch_size, progress=progress)
            desirable[cs.attribute] = collect(model, list(cs.positive), hook_name, **kw).acts[hook_name]
            undesirable[cs.attribute] = collect(model, list(cs.negative), hook_name, **kw).acts[hook_name]
        method, history = cls.fit(desirable, undesirable, hook_name, **fit_kwargs)
        cfg = {**method.fit_config, "positions": positions if isinstance(positions, str) else int(positions)}
        return replace(method, fit_config=cfg), history
