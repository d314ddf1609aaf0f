"""tl_steer: inference-time activation steering for TransformerLens 4.x ``TransformerBridge`` models.

Steering methods are HookPoint-compatible hook factories: every fitted method has
``hooks(model, positions=..., strength=...)``, which returns TL's own ``[(hook_name, fn), ...]`` list for
``run_with_hooks``, ``with model.hooks(...)``, ``run_with_cache``, ``generate`` (inside [`steer()`][tl_steer.core.steer]) and
``transformer_lens.patching``. ``import tl_steer as ts`` is all a notebook needs::

    model = ts.load("smollm2-135m-instruct")
    vec = ts.mean_diff(model, ts.ContrastSet("joy", positive=[...], negative=[...]), layer=12)
    with ts.steer(model, vec.hooks(model, positions="generated", strength=4)):
        model.generate("I think the movie was", max_new_tokens=20, do_sample=False)
"""

from . import registry
from ._version import __version__ as __version__
from .collect import Collection, collect
from .core import HookList, Positions, scoped, steer, tracking
from .errors import HookNameError, ManifestError, ModelError, ScopeError, ShapeError, SteeringError
from .exporting import export
from .interop import from_repeng, from_steering_vectors, to_repeng, to_steering_vectors
from .io import load_method, save
from .methods import *  # noqa: F403 - the registered methods' classes
from .methods import __all__ as _methods_all
from .models import load
from .pairs import ContrastSet
from .registry import FitContext, FitOptions, SteeringMethod, fit, fit_from_activations, fit_many
from .sites import Site, hook_name

__all__ = [
    *_methods_all, "Collection", "ContrastSet", "FitContext", "FitOptions", "HookList", "HookNameError", "ManifestError",
    "ModelError", "Positions", "ScopeError", "ShapeError", "Site", "SteeringError", "SteeringMethod",
    "collect", "export", "fit", "from_repeng", "from_steering_vectors", "to_repeng", "to_steering_vectors", "fit_from_activations", "fit_many", "hook_name", "load", "load_method", "registry", "save", "scoped", "steer", "tracking",
]
