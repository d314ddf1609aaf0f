"""Type names shared by the package.

``TransformerBridge`` is TransformerLens 4's model class. It is imported for type checkers and the API docs only:
at run time it is ``Any``, so ``import tl_steer`` does not import TransformerLens (seconds) until a model is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge
else:
    TransformerBridge = Any

__all__ = ["TransformerBridge"]
