"""PCA/RepE: the first principal component of paired differences, sign- and scale-aligned to the mean difference."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from strategies import seeds

import tl_steer as ts
from tl_steer.methods.pca import first_component, pca_from_activations

NAME = "blocks.0.hook_resid_pre"


def _pairs(seed=0, n=40, d=8, shift=3.0):
    """Pairs whose differences vary mostly along a planted unit axis u (plus a mean offset along u)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(d, generator=g)
    u = u / u.norm()
    neg = torch.randn(n, d, generator=g)
    along = shift + 2.0 * torch.randn(n, 1, generator=g)  # spread along u: the top component
    pos = neg + along * u + 0.1 * torch.randn(n, d, generator=g)
    return {NAME: pos}, {NAME: neg}, u


def test_recovers_the_planted_axis_with_the_mean_differences_sign_and_length():
    pos, neg, u = _pairs()
    v = pca_from_activations(pos, neg, strength=2.0).vectors[NAME]
    m = (pos[NAME] - neg[NAME]).mean(0)
    unit = v / v.norm()
    assert float(unit @ u) > 0.99  # the axis, pointing the way of the mean difference
    torch.testing.assert_close(v.norm(), (m @ unit).abs(), rtol=1e-4, atol=1e-5)
    fitted = pca_from_activations(pos, neg, strength=2.0)
    assert fitted.method == "pca" and fitted.strength == 2.0


@settings(max_examples=25, deadline=None)
@given(seed=seeds)
def test_sign_follows_the_mean_difference_and_the_seed_barely_matters(seed):
    pos, neg, _ = _pairs(seed=seed % 1000)
    a = pca_from_activations(pos, neg, seed=seed).vectors[NAME]
    b = pca_from_activations(pos, neg, seed=seed + 1).vectors[NAME]
    m = (pos[NAME] - neg[NAME]).mean(0)
    assert float(a @ m) >= 0 and float(b @ m) >= 0
    # the random sign flips move the centring a little, not the axis
    assert float(torch.nn.functional.cosine_similarity(a, b, dim=0)) > 0.999
    swapped = pca_from_activations(neg, pos, seed=seed).vectors[NAME]
    torch.testing.assert_close(swapped, -a, rtol=1e-4, atol=1e-5)  # same seed, same flips: exactly the opposite


def test_first_component_is_deterministic_for_a_seed():
    pos, neg, _ = _pairs()
    diffs = pos[NAME] - neg[NAME]
    x = first_component(diffs, torch.Generator().manual_seed(3))
    y = first_component(diffs, torch.Generator().manual_seed(3))
    assert torch.equal(x, y)


def test_errors():
    with pytest.raises(ts.SteeringError, match="at least 2 aligned pairs"):
        pca_from_activations({NAME: torch.randn(3, 4)}, {NAME: torch.randn(5, 4)})
    with pytest.raises(ts.SteeringError, match="same non-empty hook names"):
        pca_from_activations({NAME: torch.randn(3, 4)}, {"other": torch.randn(3, 4)})


def test_fits_through_the_registry_and_steers(tiny):
    pairs = ts.ContrastSet("mood", ("I love it", "what a joy", "so kind", "a gift"),
                           ("I hate it", "what a pain", "so cruel", "an insult"))
    fitted = ts.fit("pca", tiny, [pairs], ts.FitOptions(layer=1, progress=False))
    assert fitted.hook_names() == ["blocks.1.hook_resid_pre"]
    with ts.steer(tiny, fitted.hooks(tiny, positions="last_prompt", strength=4.0)):
        steered = tiny("I think the movie was")
    assert not torch.allclose(steered, tiny("I think the movie was"))
    with pytest.raises(ts.SteeringError, match="paired"):
        ts.fit("pca", tiny, [ts.ContrastSet("x", ("a", "b", "c"), ("d", "e"))], ts.FitOptions(layer=1, progress=False))
