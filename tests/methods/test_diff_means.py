"""Mean-difference / CAA / ActAdd vectors and the position-union scope."""

from __future__ import annotations

import pytest
import torch

from tl_steer import io, steer, tracking
from tl_steer.collect import collect
from tl_steer.core import Positions, parse_position_set
from tl_steer.errors import ScopeError, ShapeError, SteeringError
from tl_steer.methods.diff_means import actadd, caa, mean_diff, mean_diff_from_activations
from tl_steer.pairs import ContrastSet
from tl_steer.sweep import continuation_logprob

CONTRAST = ContrastSet(
    "sentiment",
    ("I love this, it is great", "what a wonderful day", "happy and kind words"),
    ("I hate this, it is awful", "what a terrible day", "angry and cruel words"),
)


def test_from_activations_is_the_mean_difference():
    g = torch.Generator().manual_seed(0)
    pos = {"blocks.0.hook_resid_pre": torch.randn(5, 8, generator=g)}
    neg = {"blocks.0.hook_resid_pre": torch.randn(7, 8, generator=g)}
    v = mean_diff_from_activations(pos, neg, strength=2.5)
    want = pos["blocks.0.hook_resid_pre"].mean(0) - neg["blocks.0.hook_resid_pre"].mean(0)
    torch.testing.assert_close(v.vectors["blocks.0.hook_resid_pre"], want)
    assert v.strength == 2.5
    assert v.method == "caa" and "caa" in repr(v) and len(repr(v)) < 200
    unit = mean_diff_from_activations(pos, neg, normalize=True)
    torch.testing.assert_close(unit.vectors["blocks.0.hook_resid_pre"], want / want.norm())


def test_from_activations_errors():
    with pytest.raises(SteeringError, match="same non-empty hook names"):
        mean_diff_from_activations({"a": torch.zeros(2, 3)}, {"b": torch.zeros(2, 3)})
    with pytest.raises(ShapeError, match=r"positive \(2, 3\) and negative \(2, 4\)"):
        mean_diff_from_activations({"a": torch.zeros(2, 3)}, {"a": torch.zeros(2, 4)})


def test_mean_diff_matches_collected_activations(tiny):
    v = mean_diff(tiny, CONTRAST, layer=1, strength=3.0)
    name = "blocks.1.hook_resid_pre"
    assert v.hook_names() == [name] and v.strength == 3.0
    p = collect(tiny, list(CONTRAST.positive), name, progress=False).acts[name]
    n = collect(tiny, list(CONTRAST.negative), name, progress=False).acts[name]
    torch.testing.assert_close(v.vectors[name], p.mean(0) - n.mean(0))
    assert caa is mean_diff
    same = mean_diff(tiny, CONTRAST, [name], strength=3.0)
    torch.testing.assert_close(same.vectors[name], v.vectors[name])
    z = mean_diff(tiny, CONTRAST, layer=[0, 1], site="z")
    assert [t.shape for t in z.vectors.values()] == [(4, 16), (4, 16)]


def test_actadd_is_a_single_pair_difference(tiny):
    v = actadd(tiny, "Love", "Hate", layer=1)
    name = "blocks.1.hook_resid_pre"
    a = collect(tiny, ["Love", "Hate"], name, progress=False).acts[name]
    torch.testing.assert_close(v.vectors[name], a[0] - a[1])
    with pytest.raises(SteeringError, match="one positive and one negative prompt"):
        actadd(tiny, ["Love"], "Hate", layer=0)  # type: ignore[arg-type]


def test_mean_diff_argument_errors(tiny):
    with pytest.raises(SteeringError, match="either hook_names or"):
        mean_diff(tiny, CONTRAST, "blocks.0.hook_resid_pre", layer=0)
    with pytest.raises(SteeringError, match="needs hook_names"):
        mean_diff(tiny, CONTRAST)
    with pytest.raises(SteeringError, match="one vector per text"):
        mean_diff(tiny, CONTRAST, layer=0, read="all")


def test_position_union_parsing():
    assert parse_position_set("last_prompt+generated") == (Positions.LAST_PROMPT, Positions.GENERATED)
    assert parse_position_set(("prompt", Positions.PROMPT)) == (Positions.PROMPT,)
    with pytest.raises(ScopeError, match="empty position scope"):
        parse_position_set("last_prompt+")


def test_union_scope_edits_each_position_once(tiny):
    v = mean_diff(tiny, CONTRAST, layer=1, strength=1.0)
    x = ["some prompt", "hi"]
    with tracking(tiny):
        _check_unions(tiny, v, x)


def _check_unions(tiny, v, x):
    prompt = tiny.run_with_hooks(x, fwd_hooks=v.hooks(tiny, positions="prompt"), padding_side="left")
    union = tiny.run_with_hooks(x, fwd_hooks=v.hooks(tiny, positions="prompt+last_prompt"), padding_side="left")
    torch.testing.assert_close(union, prompt)  # last_prompt is inside prompt: no second addition
    last = tiny.run_with_hooks(x, fwd_hooks=v.hooks(tiny, positions="last_prompt+generated"), padding_side="left")
    only_last = tiny.run_with_hooks(x, fwd_hooks=v.hooks(tiny, positions="last_prompt"), padding_side="left")
    torch.testing.assert_close(last, only_last)  # a plain forward has no generated tokens
    assert not torch.allclose(last, prompt)


def test_union_scope_in_cached_generation(tiny_hf):
    v = mean_diff(tiny_hf, CONTRAST, layer=1, strength=8.0)
    kw = dict(max_new_tokens=5, do_sample=False, stop_at_eos=False, verbose=False)
    prompts = ["The movie was", "Hi"]
    with steer(tiny_hf, v.hooks(tiny_hf, positions="last_prompt+generated")):
        cached = tiny_hf.generate(prompts, **kw)
        uncached = [tiny_hf.generate(p, use_past_kv_cache=False, **kw) for p in prompts]
    with steer(tiny_hf, v.hooks(tiny_hf, positions="last_prompt")):
        last_only = tiny_hf.generate(prompts, **kw)
    assert cached == uncached
    assert cached != last_only


def test_save_load_round_trip(tiny, tmp_path):
    v = mean_diff(tiny, CONTRAST, layer=[0, 1], strength=1.5)
    io.save(v, tmp_path / "caa", model=tiny)
    loaded = io.load(tmp_path / "caa", model=tiny, expect="caa")
    assert loaded.strength == 1.5 and loaded.hook_names() == v.hook_names()
    for k in v.vectors:
        assert torch.equal(loaded.vectors[k], v.vectors[k])


POS = ("I loved this movie. It was wonderful", "The food was delicious and the staff were kind",
       "What a fantastic, joyful day", "This book is brilliant and moving", "I am so happy with my new phone",
       "The concert was amazing", "Our holiday was perfect and relaxing", "She gave a beautiful, inspiring speech")
NEG = ("I hated this movie. It was awful", "The food was disgusting and the staff were rude",
       "What a horrible, miserable day", "This book is boring and stupid", "I am so angry with my new phone",
       "The concert was terrible", "Our holiday was ruined and stressful", "She gave an ugly, depressing speech")
HELD_OUT = ("I watched the film last night and I thought it was", "The restaurant we tried yesterday was",
            "My week at work has been", "The new album by that band is", "Overall, the hotel was",
            "The weather today is")


@pytest.mark.slow
def test_caa_shifts_sentiment_logprob_on_held_out_prompts(smollm2):
    """Measured (layer 10, resid_pre, all positions): mean margin shift +3.85 at coef 2, -1.79 at coef -2."""
    v = caa(smollm2, ContrastSet("sentiment", POS, NEG), layer=10)
    n = len(HELD_OUT)

    def margin(hooks):
        return (continuation_logprob(smollm2, HELD_OUT, [" great"] * n, hooks)
                - continuation_logprob(smollm2, HELD_OUT, [" terrible"] * n, hooks))

    base = margin([])
    up = margin(v.hooks(smollm2, strength=2.0)) - base
    down = margin(v.hooks(smollm2, strength=-2.0)) - base
    assert bool((up > 0).all()), up
    assert float(up.mean()) > 2.0, up
    assert float(down.mean()) < -0.8, down
