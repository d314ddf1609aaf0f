"""SADI: mask, edit, scoping, input adaptivity, save/load, generation consistency."""

from __future__ import annotations

import pytest
import torch
from consistency import assert_generation_consistent
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import activations, seeds

from tl_steer import io, steer, tracking
from tl_steer.errors import HookNameError, ScopeError, ShapeError, SteeringError
from tl_steer.functional.sadi import expand_head_mask, head_scores, sadi_edit, top_k_mask
from tl_steer.methods.sadi import Sadi, SadiEdit
from tl_steer.pairs import ContrastSet
from tl_steer.sites import Site

CONTRAST = ContrastSet(
    "sentiment",
    ("I love this, it is great", "what a wonderful day", "happy and kind words", "a lovely good film"),
    ("I hate this, it is awful", "what a terrible day", "angry and cruel words", "a horrid bad film"),
)


# ---------------------------------------------------------------- functional


@settings(max_examples=40, deadline=None)
@given(act=activations(d=12), seed=seeds)
def test_delta_zero_is_identity(act, seed):
    mask = torch.rand(12, generator=torch.Generator().manual_seed(seed)) > 0.5
    assert torch.equal(sadi_edit(act, mask, 0.0), act)


@settings(max_examples=40, deadline=None)
@given(act=activations(d=12), seed=seeds, delta=st.floats(0.1, 5.0))
def test_only_masked_elements_change(act, seed, delta):
    mask = torch.rand(12, generator=torch.Generator().manual_seed(seed)) > 0.5
    out = sadi_edit(act, mask, delta)
    assert torch.equal(out[..., ~mask], act[..., ~mask])
    torch.testing.assert_close(out[..., mask], (1 + delta) * act[..., mask])
    assert out.dtype == act.dtype and out is not act


@settings(max_examples=50, deadline=None)
@given(layers=st.integers(1, 5), elements=st.integers(1, 20), seed=seeds, data=st.data())
def test_mask_has_exactly_k_ones_and_picks_the_largest(layers, elements, seed, data):
    scores = torch.randn(layers, elements, generator=torch.Generator().manual_seed(seed))
    k = data.draw(st.integers(1, layers * elements))
    mask = top_k_mask(scores, k)
    assert int(mask.sum()) == k
    if k < scores.numel():
        assert scores[mask].min() >= scores[~mask].max()


def test_ties_are_broken_by_lower_index_and_select_modes():
    scores = torch.tensor([[1.0, 2.0, 2.0], [2.0, -5.0, 0.0]])
    m = top_k_mask(scores, 2)
    assert m.tolist() == [[False, True, True], [False, False, False]]  # three 2.0s: lowest flat indices win
    assert top_k_mask(scores, 1, "bottom").tolist() == [[False, False, False], [False, True, False]]
    assert top_k_mask(scores, 1, "abs").tolist() == [[False, False, False], [False, True, False]]


def test_mask_errors():
    with pytest.raises(SteeringError, match=r"k must be an int in \[1, 6\]"):
        top_k_mask(torch.zeros(2, 3), 7)
    with pytest.raises(SteeringError, match="k must be"):
        top_k_mask(torch.zeros(2, 3), 0)
    with pytest.raises(SteeringError, match="NaN"):
        top_k_mask(torch.tensor([[float("nan"), 1.0]]), 1)
    with pytest.raises(SteeringError, match="select must be"):
        top_k_mask(torch.zeros(2, 3), 1, "max")  # type: ignore[arg-type]


def test_head_mask_edits_only_selected_head_slices():
    z = torch.randn(2, 5, 4, 16)
    head_mask = torch.tensor([False, True, False, True])
    out = SadiEdit(expand_head_mask(head_mask, 16), 3.0)(z, hook=None)
    assert torch.equal(out[:, :, [0, 2]], z[:, :, [0, 2]])
    torch.testing.assert_close(out[:, :, [1, 3]], 4.0 * z[:, :, [1, 3]])
    assert head_scores(torch.arange(8.0).reshape(2, 4)).tolist() == [1.5, 5.5]


# ---------------------------------------------------------------- fitting


def _planted(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = {f"blocks.{lay}.attn.hook_z": torch.randn(n, 4, 16, generator=g) for lay in range(3)}
    neg = {f"blocks.{lay}.attn.hook_z": torch.randn(n, 4, 16, generator=g) for lay in range(3)}
    pos["blocks.2.attn.hook_z"][:, 1] += 3.0  # planted: head (2, 1) then (0, 3)
    pos["blocks.0.attn.hook_z"][:, 3] += 2.0
    return pos, neg


def test_from_activations_ranks_planted_heads_globally():
    pos, neg = _planted()
    s = Sadi.from_activations(pos, neg, k=2, strength=1.5)
    assert s.site is Site.Z and s.layers == (0, 1, 2) and s.d_head == 16
    assert s.scores.shape == (3, 4) and s.k == 2
    assert s.selected() == [(2, 1), (0, 3)]
    assert s.hook_names() == ["blocks.0.attn.hook_z", "blocks.2.attn.hook_z"]  # layer 1 has nothing: no hook
    torch.testing.assert_close(s.scores[2, 1], (pos["blocks.2.attn.hook_z"] - neg["blocks.2.attn.hook_z"]).mean((0, 2))[1])
    assert s.with_k(5).k == 5 and s.with_strength(0.0).strength == 0.0


def test_from_activations_errors():
    pos, neg = _planted()
    with pytest.raises(SteeringError, match="one site"):
        Sadi.from_activations({**pos, "blocks.0.hook_resid_post": torch.zeros(16, 64)},
                              {**neg, "blocks.0.hook_resid_post": torch.zeros(16, 64)}, k=1)
    with pytest.raises(SteeringError, match="same non-empty hook names"):
        Sadi.from_activations(pos, {}, k=1)
    with pytest.raises(ShapeError, match=r"must be \(n, head, d_head\)"):
        Sadi.from_activations({"blocks.0.attn.hook_z": torch.zeros(3, 64)}, {"blocks.0.attn.hook_z": torch.zeros(3, 64)}, k=1)
    with pytest.raises(HookNameError, match="not a steerable site"):
        Sadi.from_activations({"blocks.0.attn.hook_q": torch.zeros(3, 4, 16)}, {"blocks.0.attn.hook_q": torch.zeros(3, 4, 16)}, k=1)


@pytest.mark.parametrize("site, width", [("z", 4), ("mlp_post", 128), ("resid_post", 64), ("mlp_out", 64)])
def test_from_contrast_sites(tiny, site, width):
    s = Sadi.from_contrast(tiny, CONTRAST, site=site, k=5, strength=1.0)
    assert s.scores.shape == (2, width) and int(s.mask.sum()) == 5
    assert s.layers == (0, 1)


# ---------------------------------------------------------------- hooks on a model


def _resid_sadi(model, k=10, strength=2.0, layers=(1,)):
    return Sadi.from_contrast(model, CONTRAST, site="resid_post", layers=layers, k=k, strength=strength)


def test_delta_zero_hooks_are_identity(tiny):
    s = Sadi.from_contrast(tiny, CONTRAST, site="z", k=3, strength=0.0)
    x = ["some prompt", "another one here"]
    base = tiny(x, padding_side="left")
    steered = tiny.run_with_hooks(x, fwd_hooks=s.hooks(tiny, positions="all"), padding_side="left")
    assert torch.equal(base, steered)
    assert not torch.allclose(base, tiny.run_with_hooks(x, fwd_hooks=s.hooks(tiny, "all", strength=3.0), padding_side="left"))


def test_last_prompt_scope_edits_only_masked_units_at_the_last_real_token(tiny):
    s = _resid_sadi(tiny)
    name = "blocks.1.hook_resid_post"
    x = ["hi", "a longer prompt"]  # left padded: the real last token is the last column for both rows
    _, base = tiny.run_with_cache(x, names_filter=[name], padding_side="left")
    with steer(tiny, s.hooks(tiny)):
        _, cache = tiny.run_with_cache(x, names_filter=[name], padding_side="left")
    a, e = base[name], cache[name]
    m = s.feature_mask(1)
    torch.testing.assert_close(e[:, -1], sadi_edit(a[:, -1:], m, 2.0)[:, 0])
    assert torch.equal(e[:, :-1], a[:, :-1])  # earlier positions untouched
    assert torch.equal(e[:, -1][:, ~m], a[:, -1][:, ~m])  # unmasked units untouched


def test_dynamic_vector_depends_on_the_input(tiny):
    s = _resid_sadi(tiny)
    name = "blocks.1.hook_resid_post"
    edits = []
    for prompt in ["the cat sat", "quantum banana"]:
        _, base = tiny.run_with_cache([prompt], names_filter=[name])
        with steer(tiny, s.hooks(tiny)):
            _, cache = tiny.run_with_cache([prompt], names_filter=[name])
        edits.append((cache[name] - base[name])[0, -1])
        torch.testing.assert_close(edits[-1], 2.0 * s.feature_mask(1) * base[name][0, -1])
    assert edits[0].norm() > 0 and not torch.allclose(edits[0], edits[1])  # a fixed vector would give equal edits


def test_hooks_reject_wrong_site_shape(tiny):
    s = Sadi.from_activations({"blocks.0.hook_resid_post": torch.randn(4, 32)},
                              {"blocks.0.hook_resid_post": torch.randn(4, 32)}, k=2)  # 32 != d_model 64
    with pytest.raises(ShapeError, match=r"expects an activation of shape \(batch, pos, 32\)"):
        tiny.run_with_hooks(["hi"], fwd_hooks=s.hooks(tiny, positions="all"))
    with pytest.raises(ScopeError, match="unknown position scope"):
        s.hooks(tiny, positions="last_prompt+nowhere")


def test_save_load_round_trip(tiny, tmp_path):
    s = Sadi.from_contrast(tiny, CONTRAST, site="z", k=3, strength=1.7)
    io.save(s, tmp_path / "sadi", model=tiny)
    manifest = io.read_manifest(tmp_path / "sadi")
    assert manifest["method"] == "sadi" and manifest["hook_names"] == s.hook_names()
    loaded = io.load(tmp_path / "sadi", model=tiny, expect=Sadi)
    assert isinstance(loaded, Sadi) and loaded.site is Site.Z and loaded.strength == 1.7 and loaded.d_head == 16
    assert torch.equal(loaded.mask, s.mask) and torch.equal(loaded.scores, s.scores)
    x = ["check the round trip"]
    with tracking(tiny):
        torch.testing.assert_close(tiny.run_with_hooks(x, fwd_hooks=loaded.hooks(tiny)),
                                   tiny.run_with_hooks(x, fwd_hooks=s.hooks(tiny)))


# ---------------------------------------------------------------- generation consistency (real KV cache)


@pytest.mark.parametrize("positions", ["last_prompt", "last_prompt+generated"])
def test_generation_batched_vs_single_and_cached_vs_uncached(tiny_hf, positions):
    s = Sadi.from_contrast(tiny_hf, CONTRAST, site="resid_post", k=40, strength=4.0)
    assert_generation_consistent(tiny_hf, s.hooks(tiny_hf, positions=positions), ["The movie was", "Hi", "I think that it is"])


# ---------------------------------------------------------------- reference mode and neuron ranking

QUESTION, ANSWER = "The film was slow but the ending", " moved me"


def _hand_written_reference_patch(model, sadi, delta):
    """The reference code's procedure, written out with plain TL hooks: run the question alone, take every layer's
    activation at its last token, scale the selected elements by s = 1 + delta, and overwrite position ntoks - 1
    of every layer in a forward of question + answer."""
    q = model.to_tokens(QUESTION)
    full = model.to_tokens(QUESTION + ANSWER)
    p = q.shape[1] - 1
    assert torch.equal(full[:, : p + 1], q)
    site = sadi.site
    if site is Site.MLP_POST:  # the reference overwrites act_fn's output: act(gate) at every layer
        _, cache = model.run_with_cache(q, names_filter=lambda n: n.endswith("mlp.hook_pre"))
        up = {}
        hooks = []
        for layer in sadi.layers:
            s = 1.0 + delta * sadi.feature_mask(layer).float()
            act = torch.nn.functional.silu(cache[f"blocks.{layer}.mlp.hook_pre"][0, -1]) * s

            def keep_up(a, hook, layer=layer):
                up[layer] = a[:, p].clone()
                return a

            def patch(a, hook, act=act, layer=layer):
                a = a.clone()
                a[:, p] = act * up[layer]
                return a

            hooks += [(f"blocks.{layer}.mlp.hook_pre_linear", keep_up), (f"blocks.{layer}.mlp.hook_post", patch)]
    else:
        names = [f"blocks.{layer}.attn.hook_z" if site is Site.Z else f"blocks.{layer}.hook_mlp_out" for layer in sadi.layers]
        _, cache = model.run_with_cache(q, names_filter=names)
        hooks = []
        for layer, name in zip(sadi.layers, names, strict=True):
            s = 1.0 + delta * sadi.feature_mask(layer).float()
            value = cache[name][0, -1] * s

            def patch(a, hook, value=value):
                a = a.clone()
                a[:, p] = value
                return a

            hooks.append((name, patch))
    return model.run_with_hooks(full, fwd_hooks=hooks), full, p + 1


@pytest.mark.parametrize("site", ["z", "mlp_post", "mlp_out"])
def test_reference_mode_equals_a_hand_written_frozen_clean_patch(tiny, site):
    sadi = Sadi.from_contrast(tiny, CONTRAST, site=site, k=3, strength=9.0)
    assert len({layer for layer, _ in sadi.selected()}) >= 1
    want, full, n_prompt = _hand_written_reference_patch(tiny, sadi, 9.0)
    clean = sadi.clean_activations(tiny, [QUESTION])
    with steer(tiny, sadi.hooks(tiny, mode="reference", clean=clean)), tracking(tiny) as tr, tr.prompt_length(n_prompt):
        got = tiny(full)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    with steer(tiny, sadi.hooks(tiny)), tracking(tiny) as tr, tr.prompt_length(n_prompt):
        live = tiny(full)
    base = tiny(full)
    assert (live - base).abs().max() > 1e-3 and (got - base).abs().max() > 1e-3


def test_reference_and_live_modes_differ_when_the_mask_spans_layers(tiny):
    sadi = Sadi.from_contrast(tiny, CONTRAST, site="z", k=8, strength=9.0)
    assert len({layer for layer, _ in sadi.selected()}) == 2  # heads in both layers: later ones see earlier edits
    clean = sadi.clean_activations(tiny, [QUESTION])
    full = tiny.to_tokens(QUESTION + ANSWER)
    n = tiny.to_tokens(QUESTION).shape[1]
    out = {}
    for mode in ("live", "reference"):
        with steer(tiny, sadi.hooks(tiny, mode=mode, clean=clean if mode == "reference" else None)), \
                tracking(tiny) as tr, tr.prompt_length(n):
            out[mode] = tiny(full)
    assert (out["live"] - out["reference"]).abs().max() > 1e-4


def test_reference_mode_errors(tiny):
    sadi = Sadi.from_contrast(tiny, CONTRAST, site="z", k=3, strength=1.0)
    with pytest.raises(SteeringError, match="needs clean values"):
        sadi.hooks(tiny, mode="reference")
    clean = sadi.clean_activations(tiny, [QUESTION])
    with pytest.raises(SteeringError, match="last prompt token only"):
        sadi.hooks(tiny, positions="last_prompt+generated", mode="reference", clean=clean)
    with pytest.raises(SteeringError, match="'live' or 'reference'"):
        sadi.hooks(tiny, mode="frozen")
    with pytest.raises(SteeringError, match="clean= is for mode='reference'"):
        sadi.hooks(tiny, clean=clean)
    with steer(tiny, sadi.hooks(tiny, mode="reference", clean=clean)), pytest.raises(ShapeError, match="batch of 1"):
        tiny(["two prompts", "in one batch"], padding_side="left")


def test_neurons_are_ranked_on_the_activation_function_output(tiny):
    names_pre = [f"blocks.{i}.mlp.hook_pre" for i in range(2)]
    from tl_steer.collect import collect

    pos = collect(tiny, list(CONTRAST.positive), names_pre, progress=False).acts
    neg = collect(tiny, list(CONTRAST.negative), names_pre, progress=False).acts
    want = torch.stack([(torch.nn.functional.silu(pos[n]) - torch.nn.functional.silu(neg[n])).mean(0) for n in names_pre])
    s = Sadi.from_contrast(tiny, CONTRAST, site="mlp_post", k=7)
    torch.testing.assert_close(s.scores, want, atol=1e-5, rtol=1e-5)
    assert s.hook_names()[0].endswith("mlp.hook_post")
    post = Sadi.from_contrast(tiny, CONTRAST, site="mlp_post", k=7, rank="post")
    assert not torch.allclose(post.scores, s.scores)
    with pytest.raises(SteeringError, match="rank must be"):
        Sadi.from_contrast(tiny, CONTRAST, site="mlp_post", rank="gate")
    with pytest.raises(SteeringError, match="no neuron_act"):
        Sadi.from_activations(pos, neg, k=3)


def test_registry_fit_ranks_neurons_like_from_contrast(tiny):
    from tl_steer import registry

    fitted = registry.fit("sadi", tiny, [CONTRAST], registry.FitOptions(site="mlp_post", k=7, progress=False))
    torch.testing.assert_close(fitted.scores, Sadi.from_contrast(tiny, CONTRAST, site="mlp_post", k=7).scores)
    post = registry.fit("sadi", tiny, [CONTRAST], registry.FitOptions(site="mlp_post", k=7, progress=False,
                                                                     extra={"rank": "post"}))
    torch.testing.assert_close(post.scores, Sadi.from_contrast(tiny, CONTRAST, site="mlp_post", k=7, rank="post").scores)
