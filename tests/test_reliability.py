"""Bad input fails early and clearly: non-finite values, degenerate contrasts, bools as ints (one SteeringError family)."""

from __future__ import annotations

import pytest
import torch

import tl_steer as ts
from tl_steer.methods.iti import Iti
from tl_steer.methods.mat_steer import MatSteer
from tl_steer.methods.sadi import Sadi

R = "blocks.0.hook_resid_pre"
Z = ["blocks.0.attn.hook_z", "blocks.1.attn.hook_z"]


def _acts(shape, seed=0, n=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g)


@pytest.mark.parametrize("where", ["positive", "negative"])
def test_non_finite_activations_are_refused_at_fit(where):
    p, n = _acts((16,)), _acts((16,), seed=1)
    bad = (p if where == "positive" else n).clone()
    bad[3, 5] = float("nan")
    pos, neg = (bad, n) if where == "positive" else (p, bad)
    with pytest.raises(ts.SteeringError, match=rf"{where}\['{R}'\].* nan at index \(3, 5\)"):
        ts.mean_diff_from_activations({R: pos}, {R: neg})
    with pytest.raises(ts.SteeringError, match=rf"{where}\['a'\].* nan at index \(3, 5\)"):
        MatSteer.fit({"a": pos}, {"a": neg}, R, epochs=1, progress=False)
    zp, zn = {k: _acts((4, 16), i) for i, k in enumerate(Z)}, {k: _acts((4, 16), 9 + i) for i, k in enumerate(Z)}
    side = zp if where == "positive" else zn
    side[Z[1]] = side[Z[1]].clone()
    side[Z[1]][2, 1, 0] = float("inf")
    with pytest.raises(ts.SteeringError, match=rf"{where}.* inf at index"):
        Iti.from_activations(zp, zn, k=2)
    with pytest.raises(ts.SteeringError, match=rf"{where}.* inf at index"):
        Sadi.from_activations(zp, zn, k=2)


def test_non_finite_parameters_are_refused_at_construction():
    theta = torch.zeros(1, 8)
    theta[0, 2] = float("nan")
    with pytest.raises(ts.SteeringError, match=r"'theta' \(1, 8\) holds nan at index \(0, 2\)"):
        MatSteer(R, theta, torch.zeros(1, 8), torch.zeros(1), ("a",))
    with pytest.raises(ts.SteeringError, match="holds inf"):
        ts.SteeringVectors({R: torch.tensor([1.0, float("inf")])})


def test_identical_contrast_sets_are_degenerate(tiny):
    same = ts.ContrastSet("none", ("one text", "two text", "three"), ("one text", "two text", "three"))
    opts = ts.FitOptions(layer=1, k=2, progress=False)
    for method, match in [("caa", "same mean"), ("pca", "same mean"), ("sadi", "zero mean difference"),
                          ("iti", "same mean")]:
        with pytest.raises(ts.SteeringError, match=match):
            ts.fit(method, tiny, [same], opts)


def test_empty_input_and_bools(tiny):
    with pytest.raises(ts.SteeringError, match="no texts"):
        ts.collect(tiny, [], R)
    with pytest.raises(ts.SteeringError, match="has no tokens"):
        ts.collect(tiny, ["fine", ""], R, prepend_bos=False, progress=False)
    with pytest.raises(ts.HookNameError, match="non-negative int"):
        ts.hook_name(True, "z")
    zp, zn = {k: _acts((4, 16), i) for i, k in enumerate(Z)}, {k: _acts((4, 16), 9 + i) for i, k in enumerate(Z)}
    with pytest.raises(ts.SteeringError, match="k must be an int"):
        Iti.from_activations(zp, zn, k=True)
    with pytest.raises(ts.SteeringError, match="k must be an int"):
        Sadi.from_activations(zp, zn, k=True)
    with pytest.raises(ts.SteeringError, match="read must be"):
        ts.collect(tiny, ["a"], R, read=True)
