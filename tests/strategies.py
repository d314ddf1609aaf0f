"""Hypothesis strategies shared by the test suite (all in one place)."""

from __future__ import annotations

import torch
from hypothesis import strategies as st


@st.composite
def activations(draw, d: int | None = None, max_batch: int = 4, max_pos: int = 6, max_d: int = 16, dtype=torch.float32):
    """A random (batch, pos, d) activation tensor; ``d`` fixed when given."""
    b = draw(st.integers(1, max_batch))
    p = draw(st.integers(1, max_pos))
    dd = d if d is not None else draw(st.integers(1, max_d))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.floats(0.01, 100.0))
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, p, dd, generator=g) * scale).to(dtype)


@st.composite
def vectors(draw, d: int, scale_max: float = 10.0):
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    return torch.randn(d, generator=g) * draw(st.floats(0.0, scale_max))


seeds = st.integers(0, 2**31 - 1)
coefs = st.floats(-8.0, 8.0, allow_nan=False, allow_infinity=False)
