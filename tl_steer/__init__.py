"""tl_steer: inference-time activation steering for TransformerLens 4.x ``TransformerBridge`` models.

Steering methods are HookPoint-compatible hook factories: each returns TL's own ``[(hook_name, fn), ...]`` list,
which goes into ``run_with_hooks``, ``with model.hooks(...)``, ``run_with_cache``, ``generate`` (inside
:func:`steer`) and ``transformer_lens.patching``.
"""

from .collect import Collection, collect
from .core import HookList, Positions, SteeringHook, detach_tracker, scoped, steer
from .errors import HookNameError, ManifestError, ModelError, ScopeError, ShapeError, SteeringError
from .methods.iti import Iti
from .methods.mat_steer import MatSteer
from .methods.mean_diff import actadd, caa, mean_diff
from .methods.sadi import Sadi
from .methods.vector import AddVector, SteeringVectors
from .pairs import ContrastSet
from .sites import Site, hook_name

__version__ = "0.1.0"

__all__ = [
    "AddVector", "Collection", "ContrastSet", "HookList", "HookNameError", "Iti", "ManifestError", "MatSteer",
    "ModelError", "Positions", "Sadi", "ScopeError", "ShapeError", "Site", "SteeringError", "SteeringHook",
    "SteeringVectors", "actadd", "caa", "collect", "detach_tracker", "hook_name", "mean_diff", "scoped", "steer",
]
