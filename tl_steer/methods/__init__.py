"""The steering methods and their registry.

Each method is one module (a frozen dataclass of tensors with a pure ``__call__(activation, hook)``, its fitting
code, and a [`MethodSpec`][tl_steer.registry.MethodSpec] called ``SPEC``) plus one line below. Everything that dispatches
on methods (``tl_steer.io``, ``tl_steer.eval``, the CLI, ``sweep``, the benchmarks) reads the registry.
"""

from ..registry import register
from . import diff_means, iti, mat_steer, pca, sadi
from .diff_means import actadd, caa, mean_diff, mean_diff_from_activations
from .iti import Iti, ProbeReport
from .mat_steer import MatSteer
from .sadi import Sadi
from .vector import AddVector, SteeringVectors

# The registry: one entry per method, in the order help texts and tables list them.
for _module in (diff_means, pca, iti, sadi, mat_steer):
    register(_module.SPEC)

__all__ = ["AddVector", "Iti", "MatSteer", "ProbeReport", "Sadi", "SteeringVectors", "actadd", "caa", "mean_diff",
           "mean_diff_from_activations"]
