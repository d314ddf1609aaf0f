"""sweep(): grid search on a validation scorer; train/val split; teacher-forced continuation scoring."""

from __future__ import annotations

import math

import pytest
import torch

from tl_steer.errors import SteeringError
from tl_steer.methods.sadi import Sadi
from tl_steer.pairs import ContrastSet
from tl_steer.sweep import continuation_logprob, logprob_margin_scorer, sweep, train_val_split


def test_sweep_tries_every_setting_and_picks_the_best():
    built, scored = [], []

    def build(p):
        built.append(dict(p))
        return [("h", p)]  # stands in for a hook list

    def score(hooks):
        p = hooks[0][1]
        scored.append(p)
        return -((p["k"] - 3) ** 2) - (p["delta"] - 1.0) ** 2

    res = sweep(build, {"k": [1, 3, 5], "delta": [0.0, 1.0, 2.0]}, score)
    assert len(res.table) == 9 and len(built) == 9 and len(scored) == 9
    assert res.best_params == {"k": 3, "delta": 1.0} and res.best_score == 0.0
    assert {"k", "delta", "score"} <= set(res.table[0])
    low = sweep(build, {"k": [1, 3, 5], "delta": [0.0]}, score, maximize=False)
    assert low.best_params == {"k": 1, "delta": 0.0}  # ties (k=1 and k=5) keep the first in grid order


def test_sweep_skips_nan_and_rejects_bad_grids():
    vals = {1: float("nan"), 2: 0.5}
    res = sweep(lambda p: p["x"], {"x": [1, 2]}, lambda x: vals[x])
    assert res.best_params == {"x": 2} and math.isnan(res.table[0]["score"])
    with pytest.raises(SteeringError, match="at least one value"):
        sweep(lambda p: [], {"x": []}, lambda h: 0.0)
    with pytest.raises(SteeringError, match="NaN"):
        sweep(lambda p: [], {"x": [1]}, lambda h: float("nan"))


def test_train_val_split_is_seeded_disjoint_and_keeps_pairs():
    cs = ContrastSet("a", tuple(f"p{i}" for i in range(10)), tuple(f"n{i}" for i in range(10)))
    tr, va = train_val_split(cs, 0.3, seed=1)
    assert len(va.positive) == 3 and len(tr.positive) == 7
    assert set(tr.positive).isdisjoint(va.positive)
    assert [t[1:] for t in va.positive] == [t[1:] for t in va.negative]  # pair i stays together
    assert train_val_split(cs, 0.3, seed=1) == (tr, va)
    assert train_val_split(cs, 0.3, seed=2)[1] != va


def test_continuation_logprob_matches_a_full_forward_without_hooks(tiny):
    prompt, cont = "hello", " world"
    got = continuation_logprob(tiny, [prompt], [cont])
    toks = tiny.to_tokens(prompt + cont)
    n_p = tiny.to_tokens(prompt).shape[1]
    lp = torch.log_softmax(tiny(toks)[0].float(), -1)
    want = lp[n_p - 1 : -1].gather(1, toks[0, n_p:, None]).sum()
    torch.testing.assert_close(got[0], want)


def test_continuation_logprob_edits_the_prompts_last_token(tiny):
    """Under a last_prompt SADI hook, the score equals a full forward that edits exactly position len(prompt)-1."""
    cs = ContrastSet("s", ("I love it", "great day"), ("I hate it", "awful day"))
    s = Sadi.from_contrast(tiny, cs, site="resid_post", layers=[0], k=20, strength=3.0)
    prompt, cont = "hello", " there"
    got = continuation_logprob(tiny, [prompt], [cont], s.hooks(tiny))
    toks = tiny.to_tokens(prompt + cont)
    n_p = tiny.to_tokens(prompt).shape[1]
    mask = s.feature_mask(0)

    def fixed(act, hook):
        out = act.clone()
        out[:, n_p - 1] = act[:, n_p - 1] + 3.0 * mask * act[:, n_p - 1]
        return out

    lp = torch.log_softmax(tiny.run_with_hooks(toks, fwd_hooks=[("blocks.0.hook_resid_post", fixed)])[0].float(), -1)
    want = lp[n_p - 1 : -1].gather(1, toks[0, n_p:, None]).sum()
    torch.testing.assert_close(got[0], want)
    assert not torch.allclose(got, continuation_logprob(tiny, [prompt], [cont]))


def test_logprob_margin_scorer_sign(tiny):
    score = logprob_margin_scorer(tiny, ["ab", "cd"], "x", "y")
    lp_x = continuation_logprob(tiny, ["ab", "cd"], ["x", "x"])
    lp_y = continuation_logprob(tiny, ["ab", "cd"], ["y", "y"])
    assert score([]) == pytest.approx(float((lp_x - lp_y).mean()), abs=1e-5)
    with pytest.raises(SteeringError, match="2 prompts but 1 continuations"):
        continuation_logprob(tiny, ["a", "b"], ["x"])


def test_sadi_sweep_over_k_and_delta_on_validation_prompts(tiny):
    cs = ContrastSet("s", ("I love it", "great day", "so happy"), ("I hate it", "awful day", "so sad"))
    s = Sadi.from_contrast(tiny, cs, site="z", k=1)
    val = logprob_margin_scorer(tiny, ["it was", "the day"], " good", " bad")
    res = sweep(lambda p: s.with_k(p["k"]).hooks(tiny, strength=p["delta"]), {"k": [1, 4], "delta": [0.0, 5.0]}, val)
    scores = {(r["k"], r["delta"]): r["score"] for r in res.table}
    assert scores[(1, 0.0)] == pytest.approx(scores[(4, 0.0)], abs=1e-6)  # delta 0 is the unsteered model
    assert scores[(4, 5.0)] != pytest.approx(scores[(4, 0.0)], abs=1e-4)
    assert res.best_score == max(scores.values())
    frame = res.to_pandas()  # the docs show it: one row per setting, with its score
    assert list(frame.columns) == ["k", "delta", "score"] and len(frame) == 4
    assert frame["score"].max() == pytest.approx(res.best_score)


def test_margin_sweep_in_one_batch_equals_the_sweep_one_strength_at_a_time(tiny):
    from tl_steer.methods.sadi import Sadi
    from tl_steer.sweep import logprob_margin_scorer, margin_sweep

    contrast = ContrastSet("mood", ("a kind happy day", "lovely words"), ("a cruel sad day", "nasty words"))
    sadi = Sadi.from_contrast(tiny, contrast, site="resid_post", k=8, strength=1.0)
    prompts = ["The day was", "Her words were quite", "I feel"]
    strengths = [0.0, 1.0, 4.0, 16.0]
    # every token (on the tiny character-level model " good" and " bad" share their first token, so a last-prompt
    # edit of the last layer cannot move the margin)
    batched = margin_sweep(sadi, tiny, prompts, " good", " bad", strengths, positions="all", batch_size=7)
    looped = margin_sweep(sadi, tiny, prompts, " good", " bad", strengths, positions="all", per_row=False)
    score = logprob_margin_scorer(tiny, prompts, " good", " bad")  # one prompt at a time, scalar strengths
    for s in strengths:
        assert batched[s] == pytest.approx(looped[s], abs=1e-4)
        assert batched[s] == pytest.approx(score(sadi.hooks(tiny, positions="all", strength=s)), abs=1e-3)
    assert len({round(v, 4) for v in batched.values()}) > 1


def test_sweep_strength_with_a_margin_scorer_runs_one_batch_and_agrees(tiny, monkeypatch):
    import tl_steer.sweep as sw

    contrast = ContrastSet("mood", ("a kind happy day", "lovely words"), ("a cruel sad day", "nasty words"))
    sadi = Sadi.from_contrast(tiny, contrast, site="resid_pre", k=8, strength=1.0)
    prompts = ["The day was", "Her words were quite"]
    score = logprob_margin_scorer(tiny, prompts, " good", " bad")
    calls = []
    real = sw.margin_sweep
    monkeypatch.setattr(sw, "margin_sweep", lambda *a, **k: calls.append(1) or real(*a, **k))
    fast = sw.sweep_strength(sadi, tiny, score, grid=[0.0, 2.0, 8.0], positions="all")
    slow = sw.sweep_strength(sadi, tiny, lambda h: score(h), grid=[0.0, 2.0, 8.0], positions="all")  # generic path
    assert calls == [1]
    assert [r["score"] for r in fast.table] == pytest.approx([r["score"] for r in slow.table], abs=1e-4)
    assert fast.best_params == slow.best_params
