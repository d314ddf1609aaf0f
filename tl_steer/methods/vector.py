"""A fixed steering vector added at one or more hook sites (the apply side of CAA / ActAdd / mean-difference).

``a' = a + coef * v`` at the chosen positions. Fitting the vector (mean difference of contrastive activations)
lives in :mod:`tl_steer.methods.mean_diff`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jaxtyping import Float
from torch import Tensor

from .. import io
from .._typecheck import typed
from ..core import HookList, Positions, PositionSpec, scoped
from ..functional import add_scaled
from ..sites import check_activation, validate_hook_name


@dataclass(frozen=True)
class AddVector:
    """``activation + coef * vector`` at one hook. ``vector`` has the activation's trailing shape."""

    vector: Float[Tensor, "*feature"]
    coef: float = 1.0

    @typed
    def __call__(self, activation: Float[Tensor, "batch pos *feature"], hook: Any) -> Float[Tensor, "batch pos *feature"]:
        check_activation(activation, hook, tuple(self.vector.shape), "AddVector")
        return add_scaled(activation, self.vector, self.coef)


@io.register("steering_vectors")
@dataclass(frozen=True)
class SteeringVectors:
    """One vector per hook name, all scaled by ``coef``."""

    vectors: dict[str, Tensor] = field(default_factory=dict)
    coef: float = 1.0

    def hook_names(self) -> list[str]:
        return list(self.vectors)

    def to(self, device: Any) -> SteeringVectors:
        return SteeringVectors({k: v.to(device) for k, v in self.vectors.items()}, self.coef)

    def to_state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        return dict(self.vectors), {"coef": self.coef, "hook_names": list(self.vectors)}

    @classmethod
    def from_state(cls, tensors: dict[str, Tensor], config: dict[str, Any]) -> SteeringVectors:
        return cls({k: tensors[k] for k in config["hook_names"]}, float(config["coef"]))

    def hooks(self, model: Any, positions: PositionSpec = Positions.ALL, coef: float | None = None) -> HookList:
        c = self.coef if coef is None else coef
        out: HookList = []
        for name, vec in self.vectors.items():
            validate_hook_name(model, name)
            out.append((name, scoped(AddVector(vec, c), positions, model)))
        return out

    @classmethod
    def from_activations(
        cls, pos: dict[str, Tensor], neg: dict[str, Tensor], coef: float = 1.0, normalize: bool = False
    ) -> SteeringVectors:
        """Mean difference ``mean(pos[name]) - mean(neg[name])`` per hook (see :mod:`tl_steer.methods.mean_diff`)."""
        from .mean_diff import mean_diff_from_activations

        return mean_diff_from_activations(pos, neg, coef=coef, normalize=normalize)

    @classmethod
    def from_contrast(cls, model: Any, contrast: Any, hook_names: Any = None, **kwargs: Any) -> SteeringVectors:
        """CAA / mean-difference vectors from a :class:`~tl_steer.pairs.ContrastSet` (see :func:`mean_diff`)."""
        from .mean_diff import mean_diff

        return mean_diff(model, contrast, hook_names, **kwargs)
