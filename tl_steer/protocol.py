"""What a fitted steering method is: the [`SteeringMethod`][tl_steer.protocol.SteeringMethod] protocol (the contract every
method meets and the rest of tl_steer relies on) and the [`Described`][tl_steer.protocol.Described] ``repr`` mixin."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from torch import Tensor

from ._types import TransformerBridge
from .core import HookList, PositionSpec


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
    * Optional, for baking into weights ([`tl_steer.exporting`][tl_steer.exporting]): ``affine_edits(strength=None)``
      returns ``{hook_name: AffineEdit}``, the method's edit at every position it touches as
      ``a' = scale ⊙ a + shift`` with fixed tensors, or raises ``SteeringError`` saying why the edit depends on the
      input. A method without it is not exportable.
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


@dataclass(frozen=True)
class AffineEdit:
    """One hook's edit as ``a' = scale ⊙ a + shift``, the same for every input and position (``None``: 1 / 0). Both
    have the activation's trailing shape (``(n_heads, d_head)`` at ``hook_z``). What a method's ``affine_edits()``
    returns, and what [`tl_steer.exporting`][tl_steer.exporting] turns into weights."""

    scale: Tensor | None = None
    shift: Tensor | None = None
