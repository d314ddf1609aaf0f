"""tl_steer: inference-time activation steering for TransformerLens 4.x ``TransformerBridge`` models."""

from .core import HookList, Positions, SteeringHook, detach_tracker, scoped, steer
from .errors import HookNameError, ManifestError, ModelError, ScopeError, ShapeError, SteeringError
from .sites import Site, hook_name

__version__ = "0.1.0"

__all__ = [
    "HookList", "HookNameError", "ManifestError", "ModelError", "Positions", "ScopeError", "ShapeError", "Site",
    "SteeringError", "SteeringHook", "detach_tracker", "hook_name", "scoped", "steer",
]
