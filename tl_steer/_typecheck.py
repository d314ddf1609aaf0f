"""Runtime shape checking switch.

Every public tensor function carries jaxtyping annotations (``Float[Tensor, "batch pos d_model"]``). Decorate it
with [`typed()`][tl_steer._typecheck.typed]: when the environment variable ``TL_STEER_TYPECHECK=1`` is set at import time (the test suite
sets it) the annotations are checked by beartype through ``jaxtyping.jaxtyped``; otherwise [`typed()`][tl_steer._typecheck.typed] returns the
function unchanged, so hooks cost nothing extra in a forward pass.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

ENABLED = os.environ.get("TL_STEER_TYPECHECK", "0").lower() not in ("", "0", "false", "no")

if ENABLED:
    from beartype import beartype
    from jaxtyping import jaxtyped

    def typed(fn: F) -> F:
        return jaxtyped(typechecker=beartype)(fn)

else:

    def typed(fn: F) -> F:
        return fn
