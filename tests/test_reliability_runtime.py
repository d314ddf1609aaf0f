"""Issue #19, silent wrong results at run time: row-bound hooks in the scorers, the `last` scope in shared scoring,
nested and mismatched hf_steer, threads, strengths, fp16 overflow, SADI clean values, degenerate MAT-Steer fits."""

from __future__ import annotations

import threading

import pytest
import torch

import tl_steer as ts
from tl_steer.core import Positions, scoped
from tl_steer.eval.scoring import score_items, score_items_shared
from tl_steer.eval.tasks import MCItem
from tl_steer.fast import hf_steer
from tl_steer.methods.mat_steer import MatSteer
from tl_steer.methods.sadi import Sadi
from tl_steer.models import tiny_hf_model

POS = ("good kind text!", "a lovely day!", "happy words!", "so glad!")
NEG = ("bad cruel text?", "an awful day?", "angry words.", "so sad.")
ONE_TOKEN = [
    MCItem("Q: Is the sky blue?\nAnswer:", ("Y", "N"), (1, 0)),
    MCItem("A much longer context, which forces left padding of the other rows in the batch. Answer:", ("A", "B"), (0, 1)),
    MCItem("Pick one:", ("A", "B", "C", "D"), (0, 0, 1, 0)),
]
ITEMS = [
    MCItem("The cat sat on", (" the mat", " a dog that barks loudly", " x"), (1, 0, 0)),
    MCItem("Q: Is it?\nA:", (" Yes", " No"), (1, 0)),
    MCItem("A much longer context that forces left padding of the others ", (" ok", " fine then"), (0, 1)),
]


@pytest.fixture(scope="module")
def sadi_hf(tiny_hf):
    return Sadi.from_contrast(tiny_hf, ts.ContrastSet("x", POS, NEG), site="z", k=3, strength=4.0)


# ------------------------------------------------------------------------------------------------ scorers
def test_reference_mode_clean_values_are_never_applied_to_the_wrong_items(tiny_hf, sadi_hf):
    """Scorers sort rows by length: clean values built in item order would meet other items. Refused (before: the
    scores were silently those of other items' clean values)."""
    prompts = [it.prompt for it in ONE_TOKEN]
    hooks = sadi_hf.hooks(tiny_hf, mode="reference", clean=sadi_hf.clean_activations(tiny_hf, prompts))
    for scorer in (score_items, score_items_shared):
        with pytest.raises(ts.SteeringError, match="per-row strengths or reference-mode clean values"):
            scorer(tiny_hf, ONE_TOKEN, hooks)
    vec = ts.mean_diff(tiny_hf, ts.ContrastSet("x", POS, NEG), layer=1)
    with pytest.raises(ts.SteeringError, match="wrong items"):
        score_items(tiny_hf, ONE_TOKEN, vec.hooks(tiny_hf, strength=[1.0, 2.0, 3.0]))


def test_reference_mode_through_score_last_token_is_per_item(tiny_hf, sadi_hf):
    """The supported path: clean values computed batch by batch equal a one-item-at-a-time run."""
    from tl_steer.eval.scoring import score_last_token

    fast = score_last_token(tiny_hf, ONE_TOKEN, {"ref": lambda clean: sadi_hf.hooks(tiny_hf, mode="reference", clean=clean)},
                            batch_size=3, clean_names=sadi_hf.clean_names(), bos=True)["ref"]
    for it, got in zip(ONE_TOKEN, fast, strict=True):
        clean = sadi_hf.clean_activations(tiny_hf, [it.prompt])  # the tokenizer's rule: BOS first (char tokenizer)
        one = score_last_token(tiny_hf, [it], {"ref": sadi_hf.hooks(tiny_hf, mode="reference", clean=clean)},
                               bos=True)["ref"][0]
        assert got.logprob == pytest.approx(one.logprob, abs=1e-4)


def test_shared_prompt_scoring_equals_full_scoring_under_scope_last(tiny_hf):
    vec = ts.mean_diff(tiny_hf, ts.ContrastSet("x", POS, NEG), layer=1).with_strength(6.0)
    hooks = vec.hooks(tiny_hf, positions="last")
    full = score_items(tiny_hf, ITEMS + ONE_TOKEN, hooks)
    shared = score_items_shared(tiny_hf, ITEMS + ONE_TOKEN, hooks)
    base = score_items(tiny_hf, ITEMS + ONE_TOKEN, [])
    for f, s, b in zip(full, shared, base, strict=True):
        assert s.logprob == pytest.approx(f.logprob, abs=1e-4)
        assert f.logprob == pytest.approx(b.logprob, abs=1e-4)  # `last` cannot change these scores


def test_shared_prompt_scoring_on_a_tl_native_model(tiny):
    """TL-native models have no reorderable HF cache: shared scoring falls back to full scoring (before:
    AttributeError 'reorder_cache')."""
    got = score_items_shared(tiny, ITEMS, [])
    want = score_items(tiny, ITEMS, [])
    assert [g.logprob for g in got] == [w.logprob for w in want]
    from tl_steer.eval.scoring import score_last_token

    with pytest.raises(ts.SteeringError, match="TL-native"):
        score_last_token(tiny, ONE_TOKEN, {"none": []})


@pytest.mark.parametrize("bad", [0, -1, True, 2.5])
def test_scorers_refuse_bad_batch_sizes(tiny_hf, bad):
    for scorer in (score_items, score_items_shared):
        with pytest.raises(ts.SteeringError, match="batch_size"):
            scorer(tiny_hf, ONE_TOKEN, [], batch_size=bad)


# ------------------------------------------------------------------------------------------------ hf_steer
@pytest.fixture(scope="module")
def twin():
    bridge, hf = tiny_hf_model(with_hf=True)
    vec = ts.mean_diff(bridge, ts.ContrastSet("x", POS, NEG), layer=1)
    return bridge, hf, vec


def _gen(hf, bridge, use_cache: bool) -> list[int]:
    ids = bridge.to_tokens("hello there")
    out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False, use_cache=use_cache,
                      pad_token_id=0)
    return out[0].tolist()


@pytest.mark.parametrize("use_cache", [False, True])
def test_nested_hf_steer_keeps_the_inner_blocks_scopes(twin, use_cache):
    """The inner block's `generated` hooks edit generated tokens also in uncached generation (before: nothing)."""
    bridge, hf, vec = twin
    gen = vec.hooks(bridge, positions="generated", strength=8.0)
    prompt = ts.mean_diff(bridge, ts.ContrastSet("y", NEG, POS), layer=0).hooks(bridge, positions="prompt", strength=3.0)
    with hf_steer(bridge, hf, prompt, gen):
        flat = _gen(hf, bridge, use_cache)
    with hf_steer(bridge, hf, prompt), hf_steer(bridge, hf, gen):
        nested = _gen(hf, bridge, use_cache)
    with hf_steer(bridge, hf, prompt):
        outer_only = _gen(hf, bridge, use_cache)
    assert nested == flat and nested != outer_only


def test_hf_steer_refuses_what_does_not_fit(twin, tiny_hf):
    bridge, hf, vec = twin
    with pytest.raises(ts.SteeringError, match="built for another model"):
        hf_steer(bridge, hf, vec.hooks(tiny_hf, positions="prompt"))
    other = tiny_hf_model(n_heads=8, n_key_value_heads=4, with_hf=True)[1]
    with pytest.raises(ts.SteeringError, match="num_attention_heads 8 vs 4"):
        hf_steer(bridge, other, vec.hooks(bridge))
    with pytest.raises(ts.HookNameError, match="2 layers"):
        hf_steer(bridge, hf, [("blocks.7.hook_resid_pre", lambda a, hook: a)])
    with pytest.raises(ts.SteeringError, match="not callable"):
        hf_steer(bridge, hf, [("blocks.0.hook_resid_pre", 3)])
    block = hf_steer(bridge, hf, vec.hooks(bridge))
    with block:
        pass
    with pytest.raises(ts.SteeringError, match="already entered"):
        with block:
            pass
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in hf.modules())


# ------------------------------------------------------------------------------------------------ threads
def test_threads_steering_one_model_get_their_own_results(tiny_hf):
    """Two threads steer one model with different vectors while a third runs it unsteered: every result equals the
    same call made alone (before: 18 of 22 wrong, and the unsteered thread came out steered)."""
    vec = ts.mean_diff(tiny_hf, ts.ContrastSet("x", POS, NEG), layer=1)
    prompts = ["hello there", "a much longer prompt for the model"]
    strengths = {"a": 6.0, "b": -6.0, "none": None}
    scopes = {"a": "all", "b": "last_prompt+generated", "none": None}

    def run(kind: str) -> list[list[int]]:
        out = []
        for p in prompts:
            if strengths[kind] is None:
                out.append(tiny_hf.generate(p, max_new_tokens=5, do_sample=False, verbose=False, return_type="tokens")[0].tolist())
                continue
            with ts.steer(tiny_hf, vec.hooks(tiny_hf, positions=scopes[kind], strength=strengths[kind])):
                out.append(tiny_hf.generate(p, max_new_tokens=5, do_sample=False, verbose=False, return_type="tokens")[0].tolist())
        return out

    want = {k: run(k) for k in strengths}
    assert want["a"] != want["none"] and want["b"] != want["none"]
    got: dict[str, list] = {k: [] for k in strengths}
    errors: list[BaseException] = []

    def worker(kind: str) -> None:
        try:
            for _ in range(4):
                got[kind].append(run(kind))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in strengths]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors
    for k in strengths:
        assert got[k] == [want[k]] * 4, k


# ------------------------------------------------------------------------------------------------ strengths
@pytest.mark.parametrize("bad", [
    torch.tensor([True, False]), [True, False], [[1.0, 2.0]], [1.0, [2.0]], [1.0, "2"], torch.ones(2, 2),
    torch.tensor([1 + 1j, 2]), [], [float("nan"), 1.0], torch.tensor(True),
])
def test_bad_per_row_strengths_are_refused(tiny_hf, bad):
    vec = ts.mean_diff(tiny_hf, ts.ContrastSet("x", POS, NEG), layer=1)
    with pytest.raises(ts.SteeringError, match="strength"):
        vec.hooks(tiny_hf, strength=bad)
    with pytest.raises(ts.SteeringError, match="strength"):
        vec.with_strength(bad)


def test_a_strength_tensor_is_copied(tiny_hf):
    vec = ts.mean_diff(tiny_hf, ts.ContrastSet("x", POS, NEG), layer=1)
    s = torch.tensor([1.0, 2.0])
    m = vec.with_strength(s)
    s[0] = 99.0
    assert m.strength.tolist() == [1.0, 2.0]


def test_fp16_overflow_is_an_error_not_nan_logits():
    model = tiny_hf_model().to(torch.float16)
    vec = ts.mean_diff(model, ts.ContrastSet("x", POS, NEG), layer=1)
    with ts.steer(model, vec.hooks(model, strength=1.0)):
        assert torch.isfinite(model("hello there").float()).all()
    with pytest.raises(ts.SteeringError, match="overflows float16"):
        with ts.steer(model, vec.hooks(model, strength=1e9)):
            model("hello there")


# ------------------------------------------------------------------------------------------------ SADI clean values
def test_sadi_clean_values_are_checked(tiny_hf, sadi_hf):
    clean = sadi_hf.clean_activations(tiny_hf, ["hello there"])
    name = sadi_hf.clean_names()[0]
    nan = {k: v.clone() for k, v in clean.items()}
    nan[name][0, 0, 0] = float("nan")
    with pytest.raises(ts.SteeringError, match="nan at index"):
        sadi_hf.hooks(tiny_hf, mode="reference", clean=nan)
    wrong = {**clean, name: clean[name][..., :3]}
    with pytest.raises(ts.ShapeError, match="must be a float"):
        sadi_hf.hooks(tiny_hf, mode="reference", clean=wrong)
    with pytest.raises(ts.SteeringError, match="must be a dict"):
        sadi_hf.hooks(tiny_hf, mode="reference", clean=list(clean.values()))
    with pytest.raises(ts.ShapeError, match="rows"):
        sadi_hf.hooks(tiny_hf, mode="reference", clean={**clean, name: torch.cat([clean[name]] * 2)})


# ------------------------------------------------------------------------------------------------ fitting
def test_mat_steer_refuses_identical_sides():
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ts.SteeringError, match="same mean"):
        MatSteer.fit({"a": x}, {"a": x.clone()}, "blocks.0.hook_resid_pre", epochs=1, progress=False)


@pytest.mark.parametrize("kw", [{"epochs": "abc"}, {"epochs": 0}, {"batch_size": 0}, {"lr": -1.0}, {"seed": -2},
                                {"lambdas": (0.1, 0.1)}, {"sigma": float("nan")}, {"patience": 0}])
def test_mat_steer_fit_numbers_are_checked(kw):
    g = torch.Generator().manual_seed(0)
    p, n = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g) + 1
    with pytest.raises(ts.SteeringError, match=next(iter(kw))):
        MatSteer.fit({"a": p}, {"a": n}, "blocks.0.hook_resid_pre", progress=False, **kw)


@pytest.mark.parametrize("kw", [{"k": 0}, {"k": -1}, {"k": True}, {"read_batch_size": 0}, {"layer": -1}, {"seed": 1.5},
                                {"prepend_bos": "yes"}, {"extra": None}, {"batch_size": 8}])
def test_fit_options_are_checked(kw):
    with pytest.raises(ts.SteeringError, match=next(iter(kw))):
        ts.FitOptions(**kw)


def test_k_zero_is_no_longer_eight(tiny_hf):
    """FitOptions(k=0) used to become k = 8 silently; now it is refused, and k=None still means the default."""
    with pytest.raises(ts.SteeringError, match="k must be an int >= 1"):
        ts.FitOptions(k=0)
    m = ts.fit("sadi", tiny_hf, [ts.ContrastSet("x", POS, NEG)], ts.FitOptions(progress=False))
    assert m.k == 8


def test_steer_on_a_gated_hook_is_a_steering_error(tiny_hf):
    with pytest.raises(ts.SteeringError, match="use_attn_result|refused"):
        with ts.steer(tiny_hf, [("blocks.0.attn.hook_result", lambda a, hook: a)]):
            pass
    assert not any(hp._forward_hooks for hp in tiny_hf.hook_dict.values())


def test_steer_hooks_in_raw_scoped_use_are_thread_local(tiny_hf):
    """A thread running the model while another holds tracking is neither tracked nor edited."""
    vec = ts.mean_diff(tiny_hf, ts.ContrastSet("x", POS, NEG), layer=1)
    base = tiny_hf("hello there").detach()
    other: list[torch.Tensor] = []
    with ts.steer(tiny_hf, vec.hooks(tiny_hf, positions="last_prompt", strength=8.0)):
        steered = tiny_hf("hello there").detach()
        t = threading.Thread(target=lambda: other.append(tiny_hf("hello there").detach()))
        t.start()
        t.join()
    assert not torch.allclose(steered, base) and torch.equal(other[0], base)


def test_positions_enum_still_round_trips():
    assert scoped(lambda a, hook: a, Positions.ALL).positions == (Positions.ALL,)


@pytest.mark.slow
def test_smollm2_fp16_at_a_huge_strength_is_an_error(smollm2):
    """The issue's case: SmolLM2 in fp16 at strength 1e6 gave NaN logits with no word."""
    from tl_steer.models import load

    half = load("smollm2", device="cpu", dtype=torch.float16)
    vec = ts.mean_diff(half, ts.ContrastSet("joy", POS, NEG), layer=12)
    with pytest.raises(ts.SteeringError, match="overflows float16"):
        with ts.steer(half, vec.hooks(half, strength=1e6)):
            half("Tell me about your weekend.")
    with ts.steer(half, vec.hooks(half, strength=4.0)):
        assert torch.isfinite(half("Tell me about your weekend.").float()).all()
