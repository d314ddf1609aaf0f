"""Evaluation conditions: every registered method fits and steers through the registry; clear errors."""

from __future__ import annotations

import pytest

from tl_steer import SteeringError, registry
from tl_steer.eval import steering
from tl_steer.eval.pairs import contrast_from_items
from tl_steer.eval.scoring import score_choices
from tl_steer.eval.tasks import MCItem

ITEMS = [MCItem(f"Q: is {w} true?\nA:", (" yes it is", " no it is not"), (1, 0)) for w in
         ("this", "that", "it", "sky blue", "grass red", "two even", "ice hot", "fire warm")]


@pytest.fixture(scope="module")
def sets():
    other = [MCItem(f"Statement: {w}. Fair?", (" fair", " unfair"), (1, 0)) for w in ("a", "b", "c", "d", "e", "f")]
    return [contrast_from_items("a", ITEMS), contrast_from_items("b", other)]


def test_fit_many_and_hooks_change_scores(tiny, sets):
    opts = steering.FitOptions(layer=1, k=2, progress=False, extra={"epochs": 2})
    fitted = steering.fit_many(steering.fitted_names(), tiny, sets, opts)
    assert set(fitted) == set(registry.names())
    base = score_choices(tiny, ITEMS[:3])
    for m, f in fitted.items():
        hooks = steering.hooks(m, f, tiny, strength=8.0)
        assert hooks, m
        steered = score_choices(tiny, ITEMS[:3], hooks=hooks)
        assert any(abs(a - b) > 1e-4 for s, t in zip(steered, base, strict=True) for a, b in zip(s, t, strict=True)), m
    assert steering.hooks("none", None, tiny) == [] and steering.hooks("prompting", None, tiny) == []


def test_fit_and_fit_many_agree(tiny, sets):
    """One code path: fitting alone or together gives the same method (the SADI site option is honoured in both)."""
    opts = steering.FitOptions(layer=1, site="mlp_post", k=3, progress=False)
    alone = steering.fit("sadi", tiny, sets, opts)
    together = steering.fit_many(["sadi", "caa"], tiny, sets, opts)["sadi"]
    assert alone.site.value == together.site.value == "mlp_post" and alone.k == together.k == 3
    assert alone.selected() == together.selected()


def test_fit_single_method_matches_layer_default(tiny, sets):
    caa = steering.fit("caa", tiny, sets, steering.FitOptions(progress=False))
    assert caa.hook_names() == [f"blocks.{tiny.cfg.n_layers // 2}.hook_resid_pre"]


def test_errors(tiny, sets):
    with pytest.raises(SteeringError, match="unknown method 'lora'"):
        steering.parse_method("lora")
    assert steering.parse_method("MAT_Steer") == "mat-steer" and steering.parse_method("mean-diff") == "caa"
    assert steering.parse_method("base") == "none"
    with pytest.raises(SteeringError, match="nothing to fit"):
        steering.fit("prompting", tiny, sets)
    with pytest.raises(SteeringError, match="out of range"):
        steering.fit("caa", tiny, sets, steering.FitOptions(layer=7, progress=False))
    with pytest.raises(SteeringError, match=r"fit options \['kernel'\] belong to none of \['caa'\]"):
        steering.fit("caa", tiny, sets, steering.FitOptions(progress=False, extra={"kernel": "median"}))
