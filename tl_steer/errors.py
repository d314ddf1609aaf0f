"""One error family for everything tl_steer refuses to do.

Every error names what was wrong (the hook, the expected and actual shapes or values) and how to fix it.
All of them are ``ValueError`` subclasses, so ``except ValueError`` keeps working for callers that do not
know about tl_steer.
"""

from __future__ import annotations


class SteeringError(ValueError):
    """Base class of every error raised by tl_steer."""


class HookNameError(SteeringError, KeyError):
    """A hook name that does not exist on the model (the message lists near matches)."""

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class ShapeError(SteeringError):
    """An activation or tensor whose shape, dtype or device does not fit the steering method."""


class ScopeError(SteeringError):
    """A position scope that cannot be resolved for the current forward pass."""


class ManifestError(SteeringError):
    """A saved steering file that is corrupt, from another method, or for another model."""


class ModelError(SteeringError):
    """A model that cannot be loaded offline (missing package or file)."""


def check_int(value: object, name: str, low: int, optional: bool = False) -> None:
    """Raise [`SteeringError`][tl_steer.errors.SteeringError] unless ``value`` is an int ``>= low`` (a bool is not an
    int here; ``None`` passes when ``optional``). ``name`` says where, e.g. ``"FitOptions.k"``."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SteeringError(f"{name} must be an int >= {low}{' or None' if optional else ''}, got {value!r}")


def check_bos(value: object, name: str, error: type[SteeringError] = SteeringError) -> None:
    """Raise ``error`` unless ``value`` is a BOS rule: ``True``, ``False`` or ``None`` (the model's own rule)."""
    if value is not None and not isinstance(value, bool):
        raise error(f"{name} must be True, False or None (the tokenizer's rule), got {value!r}")


def ensure_finite(tensors: dict, what: str) -> None:
    """Raise [`SteeringError`][tl_steer.errors.SteeringError] naming the first tensor and index that holds NaN or inf."""
    import torch

    for name, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.device.type == "meta":
            raise SteeringError(
                f"{what}: tensor {name!r} {tuple(t.shape)} is on the meta device and holds no values; keep steering "
                "tensors on a real device (method.to('cpu') or .to('cuda'))"
            )
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            bad = ~torch.isfinite(t)
            if bool(bad.any()):
                idx = tuple(int(i) for i in bad.nonzero()[0])
                raise SteeringError(
                    f"{what}: tensor {name!r} {tuple(t.shape)} holds {float(t[idx])} at index {idx}; "
                    "remove non-finite activations (NaN/inf) from the data and fit again"
                )
