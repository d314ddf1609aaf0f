"""Batched scoring equals one-by-one scoring, and steering scopes land on the right tokens."""

from __future__ import annotations

import pytest
import torch

from tl_steer import Positions, ScopeError, SteeringError, scoped
from tl_steer.core import tracking
from tl_steer.eval.scoring import ChoiceScores, encode, score_choices, score_items
from tl_steer.eval.tasks import MCItem

ITEMS = [
    MCItem("The cat sat on", (" the mat", " a dog that barks loudly", " x"), (1, 0, 0)),
    MCItem("Q: Is it?\nA:", (" Yes", " No"), (1, 0)),
    MCItem("", (" got the easy cases.", " got the easy cases."), (0, 1),
           prompts=("Sarah beat Maria so Sarah", "Sarah was much better than Maria so Maria")),
    MCItem("A much longer context that forces left padding of the others ", (" ok", " fine then"), (0, 1)),
]


@torch.no_grad()
def manual(model, context: str, continuation: str, hook=None) -> float:
    """Unpadded single-sequence log-likelihood, computed by hand."""
    ctx, cont = encode(model, context, continuation)
    toks = torch.tensor([ctx + cont])
    hooks = [hook(len(ctx))] if hook is not None else []
    logits = model.run_with_hooks(toks, fwd_hooks=hooks) if hooks else model(toks)
    lp = logits.log_softmax(-1)[0]
    return float(sum(lp[len(ctx) - 1 + k, cont[k]] for k in range(len(cont))))


@pytest.mark.parametrize("model_name", ["tiny", "tiny_hf"])
def test_batched_equals_one_by_one(model_name, request):
    model = request.getfixturevalue(model_name)
    batched = score_choices(model, ITEMS, batch_size=16)
    single = [score_choices(model, [it], batch_size=1)[0] for it in ITEMS]
    by_hand = [tuple(manual(model, it.context(j), c) for j, c in enumerate(it.choices)) for it in ITEMS]
    for b, s, h in zip(batched, single, by_hand, strict=True):
        assert b == pytest.approx(s, abs=1e-4)
        assert b == pytest.approx(h, abs=1e-4)


def test_batch_size_does_not_matter(tiny):
    a = score_choices(tiny, ITEMS, batch_size=1)
    b = score_choices(tiny, ITEMS, batch_size=3)
    for x, y in zip(a, b, strict=True):
        assert x == pytest.approx(y, abs=1e-4)


def test_normalisation_and_lengths(tiny):
    raw = score_items(tiny, ITEMS[:1])[0]
    assert raw.n_tokens == (8, 24, 2)  # character tokenizer: one token per character
    tok = score_choices(tiny, ITEMS[:1], normalize="token")[0]
    assert tok == pytest.approx([lp / n for lp, n in zip(raw.logprob, raw.n_tokens, strict=True)])
    with pytest.raises(SteeringError, match="normalize"):
        raw.get("bytes")  # type: ignore[arg-type]


def _add_at(vec: torch.Tensor, pos_fn):
    def make(prompt_len: int):
        def hook(act, hook):
            out = act.clone()
            out[:, pos_fn(prompt_len)] += vec
            return out
        return ("blocks.0.hook_resid_post", hook)
    return make


def test_last_prompt_scope_edits_the_last_context_token(tiny):
    """A last_prompt-scoped edit in batched scoring equals adding the vector at the last context token by hand."""
    vec = torch.randn(tiny.cfg.d_model, generator=torch.Generator().manual_seed(0)) * 3
    hooks = [("blocks.0.hook_resid_post", scoped(lambda a, hook: a + vec, Positions.LAST_PROMPT, tiny))]
    steered = score_choices(tiny, ITEMS, hooks=hooks, batch_size=16)
    plain = score_choices(tiny, ITEMS, batch_size=16)
    by_hand = [
        tuple(manual(tiny, it.context(j), c, _add_at(vec, lambda p: p - 1)) for j, c in enumerate(it.choices))
        for it in ITEMS
    ]
    for s, h, p in zip(steered, by_hand, plain, strict=True):
        assert s == pytest.approx(h, abs=1e-4)
        assert s != pytest.approx(p, abs=1e-3)


def test_generated_scope_edits_answer_tokens_only(tiny):
    vec = torch.randn(tiny.cfg.d_model, generator=torch.Generator().manual_seed(1)) * 3
    hooks = [("blocks.0.hook_resid_post", scoped(lambda a, hook: a + vec, Positions.GENERATED, tiny))]
    steered = score_choices(tiny, ITEMS, hooks=hooks, batch_size=16)
    plain = score_choices(tiny, ITEMS)
    # single-token answers only see the prompt: a generated-only edit cannot change them
    one = [MCItem("Q: pick one:", ("a", "b"), (1, 0))]
    assert score_choices(tiny, one, hooks=hooks)[0] == pytest.approx(score_choices(tiny, one)[0], abs=1e-6)
    by_hand = [manual(tiny, ITEMS[0].context(0), ITEMS[0].choices[0],
                      _add_at(vec, lambda p: slice(p, None)))]
    assert steered[0][0] == pytest.approx(by_hand[0], abs=1e-4)
    assert steered[0][0] != pytest.approx(plain[0][0], abs=1e-3)


def test_scoring_under_kv_model_scoped_hook(tiny_hf):
    vec = torch.randn(tiny_hf.cfg.d_model, generator=torch.Generator().manual_seed(2)) * 3
    hooks = [("blocks.1.hook_resid_pre", scoped(lambda a, hook: a + vec, Positions.LAST_PROMPT, tiny_hf))]
    a = score_choices(tiny_hf, ITEMS, hooks=hooks, batch_size=16)
    b = [score_choices(tiny_hf, [it], hooks=hooks, batch_size=1)[0] for it in ITEMS]
    for x, y in zip(a, b, strict=True):
        assert x == pytest.approx(y, abs=1e-4)


def test_long_contexts_are_split_and_truncated():
    from tl_steer.models import tiny_model

    small = tiny_model(n_ctx=40)
    items = [MCItem("x" * 30, (" a", " bb"), (1, 0)), MCItem("y" * 60, (" a", " b"), (0, 1))]
    scores = score_choices(small, items, batch_size=8)
    assert all(len(s) == 2 and all(v < 0 for v in s) for s in scores)
    ctx, cont = encode(small, "y" * 60, " a", bos=True)
    assert len(ctx) + len(cont) - 1 <= 40 and ctx[0] == small.tokenizer.bos_token_id
    ctx, _ = encode(small, "y" * 60, " a", bos=False)
    assert len(ctx) == 39 and ctx[0] != small.tokenizer.bos_token_id
    small.cfg.default_prepend_bos = False  # the default is the model's own rule (tl_steer.aligned.scoring_bos)
    assert encode(small, "y" * 60, " a")[0] == ctx
    small.cfg.default_prepend_bos = True
    assert encode(small, "y" * 60, " a")[0][0] == small.tokenizer.bos_token_id


def test_errors(tiny):
    with pytest.raises(SteeringError, match="batch_size"):
        score_choices(tiny, ITEMS, batch_size=0)
    with pytest.raises(SteeringError, match="at least 2 choices"):
        MCItem("p", (" a",), (1,))
    with pytest.raises(SteeringError, match="no choice is labelled correct"):
        MCItem("p", (" a", " b"), (0, 0))
    with pytest.raises(SteeringError, match="empty continuation"):
        encode(tiny, "p", "")


def test_prompt_length_override_contract(tiny):
    with tracking(tiny) as tracker:
        _check_prompt_length(tiny, tracker)


def _check_prompt_length(tiny, tracker):
    with pytest.raises(ScopeError, match="positive int"):
        with tracker.prompt_length(0):
            pass
    toks = torch.tensor([[1, 40, 41, 42, 43]])
    with pytest.raises(ScopeError, match="longer than the forward"):
        with tracker.prompt_length(9):
            tiny(toks)
    with tracker.prompt_length(3):
        tiny(toks)
        info = tracker.info
        assert info.prompt_len == 3 and info.last_prompt.tolist() == [2]
        tiny(torch.tensor([[1, 40, 41, 42, 43, 44]]))  # would otherwise count as an uncached generation step
        assert tracker.info.prompt_len == 3 and tracker.info.past == 0
    assert tracker._prompt_override is None


def test_choice_scores_get():
    s = ChoiceScores((-2.0, -6.0), (1, 3), (4, 2))
    assert s.get("none") == (-2.0, -6.0)
    assert s.get("token") == (-2.0, -2.0)
    assert s.get("char") == (-0.5, -3.0)


ONE_TOKEN = [  # one-token choices for the tiny models' character-level tokenizer
    MCItem("Q: Is the sky blue?\nAnswer:", ("Y", "N"), (1, 0)),
    MCItem("A much longer context, which forces left padding of the other rows in the batch. Answer:", ("A", "B"), (0, 1)),
    MCItem("Pick one:", ("A", "B", "C", "D"), (0, 0, 1, 0)),
]


def test_score_last_token_equals_full_scoring_for_last_prompt_edits(tiny_hf):
    from tl_steer.eval.scoring import score_last_token
    from tl_steer.methods.sadi import Sadi
    from tl_steer.pairs import ContrastSet

    cs = ContrastSet("x", ("good kind text", "a lovely day"), ("bad cruel text", "an awful day"))
    sadi = Sadi.from_contrast(tiny_hf, cs, site="z", k=3, strength=4.0)
    vec = torch.randn(tiny_hf.cfg.d_model, generator=torch.Generator().manual_seed(3)) * 3
    add = [("blocks.1.hook_resid_pre", scoped(lambda a, hook: a + vec, Positions.LAST_PROMPT, tiny_hf))]
    configs = {"none": [], "sadi": sadi.hooks(tiny_hf), "add": add,
               "reference": lambda clean: sadi.hooks(tiny_hf, mode="reference", clean=clean)}
    fast = score_last_token(tiny_hf, ONE_TOKEN, configs, batch_size=2, clean_names=sadi.clean_names())
    for name in ("none", "sadi", "add"):
        slow = score_items(tiny_hf, ONE_TOKEN, configs[name], batch_size=3)
        for f, s in zip(fast[name], slow, strict=True):
            assert f.logprob == pytest.approx(s.logprob, abs=1e-4) and f.greedy[0] == s.greedy[0]
    # reference mode: the same as a full forward with clean values from an unsteered run of each context
    for it, got in zip(ONE_TOKEN, fast["reference"], strict=True):
        ctx, _ = encode(tiny_hf, it.prompt, it.choices[0])
        _, cache = tiny_hf.run_with_cache(torch.tensor([ctx]), names_filter=sadi.clean_names())
        clean = {n: cache[n][:, -1] for n in sadi.clean_names()}
        want = score_items(tiny_hf, [it], sadi.hooks(tiny_hf, mode="reference", clean=clean), batch_size=1)[0]
        assert got.logprob == pytest.approx(want.logprob, abs=1e-4)
    assert fast["sadi"][0].logprob != pytest.approx(fast["none"][0].logprob, abs=1e-4)


def test_score_last_token_refuses_hooks_that_edit_the_prefix(tiny_hf):
    from tl_steer.eval.scoring import score_last_token

    hooks = [("blocks.0.hook_resid_pre", scoped(lambda a, hook: a + 1, Positions.ALL, tiny_hf))]
    with pytest.raises(SteeringError, match="only 'last_prompt' edits are exact"):
        score_last_token(tiny_hf, ONE_TOKEN, {"all": hooks})
    with pytest.raises(SteeringError, match="one-token choices"):
        score_last_token(tiny_hf, [MCItem("Q:", ("a long answer", "b"), (1, 0))], {"none": []})


@pytest.mark.parametrize("scope", ["all", "prompt", "generated", "last_prompt", "last_prompt+generated"])
def test_shared_prompt_scoring_equals_full_scoring(tiny_hf, scope):
    from tl_steer.eval.scoring import score_items_shared

    items = ITEMS + ONE_TOKEN + [MCItem("Another prompt of a middling length:", ("yes", "no way at all", "m"), (0, 1, 0))]
    vec = torch.randn(tiny_hf.cfg.d_model, generator=torch.Generator().manual_seed(5)) * 3
    hooks = [("blocks.0.hook_resid_post", scoped(lambda a, hook: a + vec, scope, tiny_hf))]
    for h in ([], hooks):
        want = score_items(tiny_hf, items, h, batch_size=3)
        got = score_items_shared(tiny_hf, items, h, batch_size=2)
        for g, w in zip(got, want, strict=True):
            assert g.logprob == pytest.approx(w.logprob, abs=1e-4) and g.n_tokens == w.n_tokens
            assert g.greedy == w.greedy
    assert score_items_shared(tiny_hf, items, hooks)[0].logprob != pytest.approx(score_items(tiny_hf, items)[0].logprob, abs=1e-4)
