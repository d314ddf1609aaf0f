"""Pure tensor math behind the steering methods: no hooks, no models, shapes in the signatures.

Each method's math lives in its own submodule; the shared pieces are re-exported here.
"""

from ._common import add_scaled, mean_difference, split_indices

__all__ = ["add_scaled", "mean_difference", "split_indices"]
