"""Fixed steering vectors added at one or more hook sites: the apply side of CAA, ActAdd, PCA/RepE and ITI.

``a' = a + strength * v`` at the chosen positions. Fitting the vectors lives in the methods' own modules
([`diff_means`][tl_steer.methods.diff_means], [`pca`][tl_steer.methods.pca], [`iti`][tl_steer.methods.iti]).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from jaxtyping import Float
from torch import Tensor

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
from ..errors import ShapeError, SteeringError, ensure_finite
from ..functional import add_scaled
from ..protocol import AffineEdit
from ..registry import Described
from ..sites import check_activation, validate_hook_name


@dataclass(frozen=True)
class AddVector:
    """``activation + coef * vector`` at one hook. ``vector`` has the activation's trailing shape."""

    vector: Float[Tensor, "*feature"]
    coef: float | Tensor = 1.0  #: a number, or one per batch row (``(batch,)``)

    @property
    def rows(self) -> int | None:
        """The batch size per-row strengths are tied to (None for one strength)."""
        return len(self.coef) if isinstance(self.coef, Tensor) else None

    @typed
    def __call__(self, activation: Float[Tensor, "batch pos *feature"], hook: Any) -> Float[Tensor, "batch pos *feature"]:
        check_activation(activation, hook, tuple(self.vector.shape), "AddVector")
        return add_scaled(activation, self.vector, row_scale(self.coef, activation, hook))


@dataclass(frozen=True, repr=False)
class SteeringVectors(Described):
    """One vector per hook name, all scaled by ``strength``; ``method`` names what fitted them."""

    vectors: dict[str, Tensor] = field(default_factory=dict)
    strength: float = 1.0
    method: str = "vectors"
    #: mean activation norm at each hook on the fitting texts (for [`tl_steer.methods.vector.SteeringVectors.relative()`][tl_steer.methods.vector.SteeringVectors.relative]); empty when unknown
    site_norms: dict[str, float] = field(default_factory=dict)
    state: ClassVar[str] = "steering_vectors"

    def __post_init__(self) -> None:
        object.__setattr__(self, "strength", as_strengths(self.strength))
        for name, v in self.vectors.items():
            if not isinstance(v, Tensor) or not v.is_floating_point() or v.ndim == 0:
                raise ShapeError(f"steering vector {name!r} must be a floating tensor of the activation's trailing shape")
        ensure_finite(self.vectors, "SteeringVectors")

    def _norms(self) -> str:
        return "|v|=" + "/".join(f"{float(v.float().norm()):.3g}" for v in list(self.vectors.values())[:3])

    def hook_names(self) -> list[str]:
        """The hooks this method edits, in layer order."""
        return list(self.vectors)

    def with_strength(self, strength: float) -> SteeringVectors:
        """The same fitted method at another strength (no refitting)."""
        return replace(self, strength=strength)

    def relative(self, fraction: float) -> SteeringVectors:
        """The strength at which the added vector's norm is ``fraction`` of the mean activation norm at its site
        (averaged over hooks): a strength that carries over between models whose residual norms differ by 100x."""
        if not self.site_norms:
            raise SteeringError(
                "relative strengths need the sites' activation norms, recorded when fitting from activations; "
                "this SteeringVectors has none (built by hand?): pass site_norms={hook: norm}"
            )
        ratios = [self.site_norms[k] / float(v.float().norm().clamp_min(1e-12)) for k, v in self.vectors.items()]
        return self.with_strength(as_strength(fraction, "fraction") * sum(ratios) / len(ratios))

    def affine_edits(self, strength: float | None = None) -> dict[str, AffineEdit]:
        """``{hook: shift}`` with ``shift = strength * v``: the edit at every position it touches, for export."""
        s = self.strength if strength is None else as_strength(strength, "strength")
        if isinstance(s, Tensor):
            raise SteeringError("export one strength, not per-row strengths: .with_strength(s)")
        return {name: AffineEdit(shift=float(s) * v.float()) for name, v in self.vectors.items()}

    def to(self, device: Any) -> SteeringVectors:
        """The same method with its tensors on ``device``."""
        return replace(self, vectors={k: v.to(device) for k, v in self.vectors.items()})

    def to_state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """``(tensors, config)`` for [`tl_steer.io.save()`][tl_steer.io.save]: the tensors go to safetensors, the config to JSON."""
        if isinstance(self.strength, Tensor):
            raise SteeringError("save steering vectors with one strength, not per-row strengths: .with_strength(s)")
        return dict(self.vectors), {"strength": self.strength, "method": self.method, "hook_names": list(self.vectors),
                                    "site_norms": dict(self.site_norms)}

    @classmethod
    def from_state(cls, tensors: dict[str, Tensor], config: dict[str, Any]) -> SteeringVectors:
        """The inverse of [`tl_steer.methods.vector.SteeringVectors.to_state()`][tl_steer.methods.vector.SteeringVectors.to_state] (what [`tl_steer.io.load_method()`][tl_steer.io.load_method] calls)."""
        missing = [k for k in config["hook_names"] if k not in tensors]
        if missing:
            raise SteeringError(f"the saved tensors lack the vectors of {missing}")
        strength = saved_strength(config, "coef")  # format 1 said coef
        return cls({k: tensors[k] for k in config["hook_names"]}, strength, str(config.get("method", "vectors")),
                   {str(k): float(v) for k, v in (config.get("site_norms") or {}).items()})

    def hooks(self, model: TransformerBridge, positions: PositionSpec | None = None, strength: float | None = None) -> HookList:
        """Hooks that add ``strength * v`` at every hook of the method.

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
        s = self.strength if strength is None else as_strengths(strength)
        out: HookList = []
        for name, vec in self.vectors.items():
            validate_hook_name(model, name)
            out.append((name, scoped(AddVector(vec, s), positions or Positions.ALL, model)))
        return out
