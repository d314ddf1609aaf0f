"""The hook contract: purity, scopes, padding and KV-cache consistency, and leak-free contexts."""

import pytest
import torch
from consistency import assert_generation_consistent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import activations, coefs

from tl_steer import Positions, ScopeError, SteeringError, scoped, steer, tracking
from tl_steer.core import tracker_for
from tl_steer.errors import HookNameError
from tl_steer.methods.vector import AddVector, SteeringVectors

SITE = "blocks.0.hook_resid_post"
PROMPTS = ["hi", "hello there", "a much longer prompt here"]


def _vec(model, seed=1, scale=4.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(model.cfg.d_model, generator=g) * scale


def _n_hooks(model) -> int:
    return sum(len(hp._forward_hooks) for hp in set(model.hook_dict.values()))


def _n_pre_hooks(model) -> int:
    """Forward pre-hooks on the HF model: where position tracking attaches."""
    return len(model.original_model._forward_pre_hooks)


@given(act=activations(d=8), coef=coefs)
@settings(max_examples=50, deadline=None)
def test_add_vector_is_pure_and_keeps_dtype(act, coef):
    v = torch.randn(8)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        a = act.to(dtype)
        before = a.clone()
        out = AddVector(v, coef)(a, hook=None)
        assert out.dtype == dtype and out.shape == a.shape and out.device == a.device
        assert torch.equal(a, before), "the hook edited its input in place"
        assert out.data_ptr() != a.data_ptr()


def test_zero_strength_hook_leaves_logits_identical(tiny):
    base = tiny(PROMPTS, padding_side="left")
    for scope in Positions:
        hooks = SteeringVectors({SITE: _vec(tiny)}, strength=0.0).hooks(tiny, positions=scope)
        with tracking(tiny):
            out = tiny.run_with_hooks(PROMPTS, fwd_hooks=hooks, padding_side="left")
        assert torch.equal(out, base), scope


def test_nonzero_hook_changes_logits(tiny):
    base = tiny(PROMPTS, padding_side="left")
    with steer(tiny, SteeringVectors({SITE: _vec(tiny)}, strength=1.0).hooks(tiny)):
        out = tiny(PROMPTS, padding_side="left")
    assert (out - base).abs().max() > 1e-2


def test_hooks_removed_after_exception(tiny):
    n0, p0 = _n_hooks(tiny), _n_pre_hooks(tiny)
    base = tiny("hello")
    with pytest.raises(RuntimeError, match="boom"):
        with steer(tiny, [(SITE, AddVector(_vec(tiny), 3.0))]):
            assert _n_hooks(tiny) == n0 + 1 and _n_pre_hooks(tiny) == p0 + 1
            raise RuntimeError("boom")
    assert _n_hooks(tiny) == n0
    assert _n_pre_hooks(tiny) == p0, "steer() left its position tracker attached"
    assert torch.equal(tiny("hello"), base)


def test_building_hooks_has_no_side_effects_and_contexts_never_leak(tiny_hf):
    model = tiny_hf
    p0, n0 = _n_pre_hooks(model), _n_hooks(model)
    sv = SteeringVectors({SITE: _vec(model)}, strength=2.0)
    hooks = sv.hooks(model, positions="last_prompt")
    assert _n_pre_hooks(model) == p0, "method.hooks(model) attached something to the model"
    for _ in range(2):  # hooks built once keep working in later blocks (no stale tracker)
        with steer(model, hooks):
            model.generate("hi there", max_new_tokens=2, do_sample=False, verbose=False)
        assert _n_pre_hooks(model) == p0 and _n_hooks(model) == n0
        assert tracker_for(model)._cache_ref is None, "the tracker still holds the last run's KV cache"
    with tracking(model), tracking(model):  # nested tracking attaches once and is removed by the outer exit
        assert _n_pre_hooks(model) == p0 + 1
        model.run_with_hooks("hi", fwd_hooks=hooks)
    assert _n_pre_hooks(model) == p0
    with pytest.raises(RuntimeError, match="boom"), tracking(model):
        raise RuntimeError("boom")
    assert _n_pre_hooks(model) == p0 and "forward" not in vars(model), "tracking left something on the model"


def test_raw_tl_calls_need_tracking_for_scoped_hooks(tiny):
    sv = SteeringVectors({SITE: _vec(tiny)}, strength=2.0)
    with pytest.raises(ScopeError, match="tl_steer.tracking"):
        tiny.run_with_hooks("hi there", fwd_hooks=sv.hooks(tiny, positions="last_prompt"))
    with tracking(tiny):
        scoped_out = tiny.run_with_hooks("hi there", fwd_hooks=sv.hooks(tiny, positions="last_prompt"))
    with steer(tiny, sv.hooks(tiny, positions="last_prompt")):
        torch.testing.assert_close(scoped_out, tiny("hi there"))
    # "all" needs no tracking: every position is edited
    torch.testing.assert_close(
        tiny.run_with_hooks("hi there", fwd_hooks=sv.hooks(tiny)),
        tiny.run_with_hooks("hi there", fwd_hooks=[(SITE, AddVector(sv.vectors[SITE], 2.0))]),
    )


def test_hooks_are_bound_to_their_model(tiny):
    from tl_steer.models import tiny_model

    other = tiny_model()
    hooks = SteeringVectors({SITE: _vec(tiny)}, strength=2.0).hooks(tiny, positions="last_prompt")
    with pytest.raises(SteeringError, match="built for another model"):
        steer(other, hooks)


def test_a_steer_context_is_entered_once(tiny):
    ctx = steer(tiny, [(SITE, AddVector(_vec(tiny), 1.0))])
    with ctx:
        pass
    with pytest.raises(SteeringError, match="already entered"), ctx:
        pass


def test_hooks_removed_when_a_hook_raises(tiny):
    n0 = _n_hooks(tiny)

    def bad(act, hook):
        raise RuntimeError("inside hook")

    with pytest.raises(RuntimeError, match="inside hook"):
        with steer(tiny, [(SITE, bad)]):
            tiny("hello")
    assert _n_hooks(tiny) == n0


def test_steer_validates_names_before_attaching(tiny):
    n0 = _n_hooks(tiny)
    with pytest.raises(HookNameError, match="Near matches"):
        with steer(tiny, [(SITE, AddVector(_vec(tiny))), ("blocks.0.hook_resid_pots", AddVector(_vec(tiny)))]):
            pass
    assert _n_hooks(tiny) == n0
    with pytest.raises(SteeringError, match="expects"):
        with steer(tiny, [SITE]):
            pass


def test_hook_returning_none_is_an_error(tiny):
    with pytest.raises(SteeringError, match="returned None"):
        tiny.run_with_hooks("hi", fwd_hooks=[(SITE, scoped(lambda a, hook: None))])


def test_scope_without_model_is_an_error():
    with pytest.raises(ScopeError, match="needs the model"):
        scoped(AddVector(torch.zeros(4)), "last_prompt")
    with pytest.raises(ScopeError, match="unknown position scope"):
        scoped(AddVector(torch.zeros(4)), "middle")


def _edited_positions(model, prompts, scope, padding_side="left"):
    """Run a forward with a recording hook and return the (batch, pos) mask of edited positions."""
    seen = {}

    def probe(act, hook):
        seen["act"] = act
        return act + 1.0

    def after(act, hook):
        seen["out"] = act
        return act

    hooks = [(SITE, scoped(probe, scope, model))]
    with steer(model, hooks):
        model.run_with_hooks(prompts, fwd_hooks=[(SITE, after)], padding_side=padding_side)
    return (seen["out"] - seen["act"]).abs().amax(-1) > 0.5


@pytest.mark.parametrize("scope", list(Positions))
def test_scope_masks_in_a_left_padded_forward(tiny, scope):
    from tl_steer.collect import tokenize_left

    _, mask = tokenize_left(tiny, PROMPTS)
    edited = _edited_positions(tiny, PROMPTS, scope)
    mask = mask.bool()
    if scope in (Positions.ALL, Positions.PROMPT):
        assert torch.equal(edited, mask)  # every real token, never padding
    elif scope is Positions.GENERATED:
        assert not edited.any()
    else:
        expect = torch.zeros_like(mask)
        expect[:, -1] = True
        assert torch.equal(edited, expect)


def test_scope_unions_edit_the_union_once(tiny):
    prompt_only = _edited_positions(tiny, PROMPTS, Positions.PROMPT)
    assert torch.equal(_edited_positions(tiny, PROMPTS, "prompt+generated"), _edited_positions(tiny, PROMPTS, "all"))
    assert torch.equal(_edited_positions(tiny, PROMPTS, ("last_prompt", "prompt")), prompt_only)
    with pytest.raises(ScopeError, match="empty position scope"):
        scoped(AddVector(torch.zeros(4)), "prompt+", tiny)
    with pytest.raises(ScopeError, match="'last_prompt\\+generated' needs the model"):
        scoped(AddVector(torch.zeros(4)), "last_prompt+generated")


def test_union_scope_generation_consistent(tiny_hf):
    sv = SteeringVectors({SITE: _vec(tiny_hf, scale=3.0)}, strength=1.0)
    assert_generation_consistent(tiny_hf, sv.hooks(tiny_hf, positions="last_prompt+generated"), PROMPTS)


@pytest.mark.parametrize("scope", list(Positions))
def test_batched_left_padded_equals_one_by_one(tiny, scope):
    sv = SteeringVectors({SITE: _vec(tiny)}, strength=1.0)
    with steer(tiny, sv.hooks(tiny, positions=scope)):
        batched = tiny(PROMPTS, padding_side="left")[:, -1]
        single = torch.cat([tiny(p)[:, -1] for p in PROMPTS])
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("scope", [p for p in Positions if p is not Positions.LAST])
def test_generation_cached_uncached_batched_single_agree(tiny_hf, scope):
    """Same steering whether the KV cache is on or off and whether prompts are batched (left-padded) or not.

    Not for ``last`` (the reference's rule): with the cache every generated token was edited once and stays edited
    in the cache; without it only the newest token is, as in the reference."""
    sv = SteeringVectors({SITE: _vec(tiny_hf, scale=3.0)}, strength=1.0)
    assert_generation_consistent(tiny_hf, sv.hooks(tiny_hf, positions=scope), PROMPTS)


def test_generated_scope_leaves_prompt_logits_alone(tiny_hf):
    """With GENERATED scope the prompt forward (prefill) is untouched, and only later tokens differ."""
    sv = SteeringVectors({SITE: _vec(tiny_hf, scale=3.0)}, strength=1.0)
    base = tiny_hf("hello there")
    with steer(tiny_hf, sv.hooks(tiny_hf, positions="generated")):
        assert torch.equal(tiny_hf("hello there"), base)


def test_generated_scope_matches_manual_edit_of_generated_positions(tiny_hf):
    """Cached generation with GENERATED scope equals one uncached forward that edits exactly positions >= P."""
    v = _vec(tiny_hf, scale=3.0)
    sv = SteeringVectors({SITE: v}, strength=1.0)
    prompt = "hello"
    P = tiny_hf.to_tokens(prompt).shape[1]
    with steer(tiny_hf, sv.hooks(tiny_hf, positions="generated")):
        toks = tiny_hf.generate(tiny_hf.to_tokens(prompt), max_new_tokens=5, do_sample=False, stop_at_eos=False, verbose=False)

    def manual(act, hook):
        out = act.clone()
        out[:, P:] += v
        return out

    logits = tiny_hf.run_with_hooks(toks[:, :-1], fwd_hooks=[(SITE, manual)])
    assert torch.equal(logits[0, P - 1 :].argmax(-1), toks[0, P:])


@given(lengths=st.lists(st.integers(1, 12), min_size=1, max_size=4))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_last_prompt_scope_edits_exactly_one_real_token_per_row(tiny, lengths):
    prompts = ["x" * n for n in lengths]
    edited = _edited_positions(tiny, prompts, Positions.LAST_PROMPT)
    assert edited.sum(1).tolist() == [1] * len(prompts)
    assert edited[:, -1].all()


def test_scope_on_foreign_activation_is_an_error(tiny):
    hook = scoped(AddVector(torch.zeros(tiny.cfg.d_model)), "prompt", tiny)
    with tracking(tiny):
        tiny("hello")
        with pytest.raises(ScopeError, match=r"\(batch, pos\)"):
            hook(torch.zeros(3, 9, tiny.cfg.d_model), hook=None)


def test_composes_with_run_with_cache(tiny):
    v = _vec(tiny)
    hooks = SteeringVectors({SITE: v}, strength=1.0).hooks(tiny)
    _, clean = tiny.run_with_cache("hello", names_filter=[SITE])
    with steer(tiny, hooks):
        _, cache = tiny.run_with_cache("hello", names_filter=[SITE])
    torch.testing.assert_close(cache[SITE], clean[SITE] + v)


def test_independent_calls_are_not_an_uncached_generation(tiny_hf):
    """model("a") then model("aa") are two prompts, not a prompt and a generated token (found by the padding
    property test: the one-token-extension rule applies only inside generate())."""
    sv = SteeringVectors({SITE: _vec(tiny_hf)}, strength=3.0)
    with steer(tiny_hf, sv.hooks(tiny_hf, positions="last_prompt")):
        tiny_hf("a")
        after_prefix = tiny_hf("aa")
    with steer(tiny_hf, sv.hooks(tiny_hf, positions="last_prompt")):
        fresh = tiny_hf("aa")
    torch.testing.assert_close(after_prefix, fresh)


def test_last_scope_is_the_last_real_token_of_each_forward(tiny_hf):
    """The reference interveners' rule: the prompt's last token in a prefill, each new token with the KV cache, and
    under teacher forcing only the final token, so log-likelihood scores of the answer cannot change."""
    from tl_steer.eval.scoring import score_items
    from tl_steer.eval.tasks import MCItem

    edited = _edited_positions(tiny_hf, PROMPTS, "last")
    assert edited.sum(1).tolist() == [1] * len(PROMPTS) and edited[:, -1].all()
    edited_right = _edited_positions(tiny_hf, PROMPTS, "last", padding_side="right")
    lengths = [tiny_hf.to_tokens(p).shape[1] for p in PROMPTS]
    assert [int(r.nonzero()[0]) for r in edited_right] == [n - 1 for n in lengths]
    sv = SteeringVectors({SITE: _vec(tiny_hf, scale=5.0)}, strength=1.0)
    items = [MCItem("Q: what is it?\nA:", (" a cat", " a dog on a log"), (1, 0))]
    assert score_items(tiny_hf, items, sv.hooks(tiny_hf, positions="last")) == score_items(tiny_hf, items)
    assert score_items(tiny_hf, items, sv.hooks(tiny_hf, positions="generated")) != score_items(tiny_hf, items)


def test_steer_takes_tl_name_filters(tiny):
    """As TL's run_with_hooks: a callable name filter hooks every matching HookPoint once (not once per alias), and a
    filter that matches nothing is an error."""
    seen: list[str] = []

    def rec(act, hook):
        seen.append(hook.name)
        return act

    toks = torch.tensor([[1, 5, 7, 9]])
    with steer(tiny, [(lambda n: n.endswith("hook_resid_pre"), rec)]):
        tiny(toks)
    assert len(seen) == tiny.cfg.n_layers and len(set(seen)) == len(seen)
    with pytest.raises(SteeringError, match="matches no hook"):
        steer(tiny, [(lambda n: n == "no.such.hook", rec)])
