"""The hook core on the real SmolLM2-135M-Instruct (GQA: 9 query heads, 3 KV heads)."""

from pathlib import Path

import pandas as pd
import pytest
import torch

from tl_steer import hook_name, steer
from tl_steer.collect import collect
from tl_steer.methods.vector import AddVector, SteeringVectors

pytestmark = pytest.mark.slow

PROMPTS = ["Hi", "The capital of France is", "I think the movie was"]


@pytest.fixture(scope="module")
def sentiment_vector(smollm2):
    name = hook_name(10, "resid_pre")
    pos = collect(smollm2, ["I love it", "What a wonderful day", "This is great"], [name], progress=False)[name]
    neg = collect(smollm2, ["I hate it", "What a terrible day", "This is awful"], [name], progress=False)[name]
    return SteeringVectors({name: pos.mean(0) - neg.mean(0)}, strength=1.0)


@pytest.mark.parametrize("scope", ["all", "generated", "last_prompt"])
def test_steered_generation_same_batched_single_cached_uncached(smollm2, sentiment_vector, scope):
    kw = dict(max_new_tokens=6, do_sample=False, stop_at_eos=False, verbose=False)
    with torch.no_grad():
        base = smollm2.generate(PROMPTS, **kw)
        with steer(smollm2, sentiment_vector.hooks(smollm2, positions=scope)):
            batched = smollm2.generate(PROMPTS, **kw)
            single = [smollm2.generate(p, **kw) for p in PROMPTS]
            uncached = [smollm2.generate(p, use_past_kv_cache=False, **kw) for p in PROMPTS]
    assert batched == single == uncached
    assert batched != base


def test_steering_moves_sentiment_logprob(smollm2, sentiment_vector):
    good, bad = smollm2.to_single_token(" great"), smollm2.to_single_token(" terrible")

    def margin(hooks):
        with torch.no_grad(), steer(smollm2, hooks):
            lp = smollm2("I think the movie was").log_softmax(-1)[0, -1]
        return float(lp[good] - lp[bad])

    base = margin([])
    up = margin(sentiment_vector.hooks(smollm2, strength=1.0))
    down = margin(sentiment_vector.hooks(smollm2, strength=-1.0))
    assert down < base - 1.0 < base + 1.0 < up, (down, base, up)


def test_head_z_edit_is_a_constant_attn_out_shift(smollm2):
    """Adding v to one head's slice of hook_z shifts hook_attn_out by the same vector (W_O v) at every position."""
    L, head = 5, 3
    v = torch.zeros(smollm2.cfg.n_heads, smollm2.cfg.d_head)
    v[head] = torch.randn(smollm2.cfg.d_head, generator=torch.Generator().manual_seed(0))
    out_name = hook_name(L, "attn_out")
    with torch.no_grad():
        _, clean = smollm2.run_with_cache("The capital of France is", names_filter=[out_name])
        with steer(smollm2, [(hook_name(L, "z"), AddVector(v))]):
            _, steered = smollm2.run_with_cache("The capital of France is", names_filter=[out_name])
    delta = (steered[out_name] - clean[out_name])[0]
    assert delta.abs().max() > 1e-3
    torch.testing.assert_close(delta, delta[:1].expand_as(delta), atol=1e-4, rtol=1e-4)


def test_composes_with_activation_patching(smollm2, sentiment_vector):
    from transformer_lens import patching

    clean = smollm2.to_tokens("When John and Mary went to the store, John gave a bottle to")
    corr = smollm2.to_tokens("When John and Mary went to the store, Mary gave a bottle to")
    M, J = smollm2.to_single_token(" Mary"), smollm2.to_single_token(" John")

    def metric(logits):
        return logits[0, -1, M] - logits[0, -1, J]

    _, cache = smollm2.run_with_cache(clean)
    df = pd.DataFrame({"layer": [0, 16, 25], "pos": [10] * 3})
    n_before = sum(len(hp._forward_hooks) for hp in set(smollm2.hook_dict.values()))
    plain = patching.get_act_patch_resid_pre(smollm2, corr, cache, metric, index_df=df, index_axis_names=None)
    with steer(smollm2, sentiment_vector.hooks(smollm2, strength=2.0)):
        steered = patching.get_act_patch_resid_pre(smollm2, corr, cache, metric, index_df=df, index_axis_names=None)
    assert plain.shape == steered.shape == (3,)
    assert (plain - steered).abs().max() > 1e-3, "the steering hook should change the patching curve"
    assert sum(len(hp._forward_hooks) for hp in set(smollm2.hook_dict.values())) == n_before


@pytest.mark.slow
def test_the_readme_demo_runs(smollm2, capsys, monkeypatch):
    """The README's first command ends in `python scripts/demo.py`: it must run and show all three methods steering:
    the mean-difference vector, MAT-Steer's per-token gates and SADI's heads."""
    import importlib.util

    from tl_steer import models

    spec = importlib.util.spec_from_file_location("demo", Path(__file__).resolve().parents[1] / "scripts" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)

    monkeypatch.setattr(models, "load", lambda *a, **k: smollm2)
    out = demo.run(tokens=6)
    rows = out["mean_diff"]
    assert len(rows) == len(demo.PROMPTS) and any(plain != steered for plain, steered, _ in rows)
    gates = out["mat_steer"]["gates"]
    assert {a for _, a, _ in gates} == {"sentiment", "politeness"}
    # the gates decide: over the four combinations (polite/rude x positive/negative) each gate opens on a token of
    # exactly the sentences that have its undesirable attribute (measured: 'disgust|ing' and 'Sh|ut|up')
    fires = {(text, a): bool(on) for text, a, on in gates}
    want = {"sentiment": ("disgusting",), "politeness": ("Shut up",)}
    for (text, a), fired in fires.items():
        assert fired == any(w in text for w in want[a]), (text, a, fired)
    heads = out["sadi"]["heads"]
    assert len(heads) == 4 and all(0 <= layer < smollm2.cfg.n_layers and 0 <= h < smollm2.cfg.n_heads for layer, h in heads)
    printed = capsys.readouterr().out
    assert "unsteered" in printed and "MAT-Steer" in printed and "gate > 0.5 on" in printed and "SADI: heads picked" in printed
