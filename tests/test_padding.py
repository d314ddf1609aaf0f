"""Every registered method under every position scope gives the one-by-one result for left- AND right-padded
batches (TL pads list input on the right and passes no attention mask then; tracking recovers each row's length)."""

from __future__ import annotations

import pytest
import torch
from consistency import assert_batched_equals_single
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tl_steer as ts
from tl_steer import registry

SCOPES = ["all", "prompt", "generated", "last_prompt", "last_prompt+generated", "prompt+generated", "last"]
POS = ("I love this, it is great", "what a wonderful day", "happy and kind words", "a lovely gift", "so glad")
NEG = ("I hate this, it is awful", "what a terrible day", "angry and cruel words", "a nasty insult", "so sad")


@pytest.fixture(scope="module")
def fitted(tiny_hf):
    sets = [ts.ContrastSet("mood", POS, NEG), ts.ContrastSet("tone", POS[::-1], NEG[::-1])]
    opts = ts.FitOptions(layer=1, k=4, progress=False, extra={"epochs": 3})
    return ts.fit_many(registry.names(), tiny_hf, sets, opts)


texts = st.lists(st.text(alphabet="abcdefgh ", min_size=1, max_size=9).filter(str.strip), min_size=2, max_size=4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(sorted(registry.names())), scope=st.sampled_from(SCOPES),
       side=st.sampled_from(["left", "right"]), prompts=texts)
def test_batched_equals_one_by_one_for_both_padding_sides(tiny_hf, fitted, method, scope, side, prompts):
    hooks = fitted[method].hooks(tiny_hf, positions=scope, strength=registry.get(method).grid[-1])
    assert_batched_equals_single(tiny_hf, hooks, prompts, sides=[side], what=f"{method} {scope}")


def test_right_padded_run_with_hooks_steers_the_short_row(tiny_hf, fitted):
    """The reported case: TL's default right padding, raw run_with_hooks inside tracking()."""
    sadi = fitted["sadi"].with_strength(4.0)
    x = ["ab", "abcdefgh"]
    with ts.tracking(tiny_hf):
        right = tiny_hf.run_with_hooks(x, fwd_hooks=sadi.hooks(tiny_hf))
        alone = tiny_hf.run_with_hooks(x[0], fwd_hooks=sadi.hooks(tiny_hf))
    n = alone.shape[1]
    torch.testing.assert_close(right[0, :n], alone[0], atol=1e-5, rtol=1e-5)
    assert (right[0, :n] - tiny_hf(x)[0, :n]).abs().max() > 1e-3, "the short row was not steered"
    assert "forward" not in vars(tiny_hf), "tracking left its forward wrapper on the model"
