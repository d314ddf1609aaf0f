"""Vectors moved between tl_steer and steering-vectors / repeng (the installed packages) steer identically: the
other library's own apply on the plain HF twin gives the steered bridge's logits within 1e-4, both ways."""

from __future__ import annotations

import copy

import pytest
import torch

import tl_steer as ts
from tl_steer import interop
from tl_steer.methods.vector import SteeringVectors
from tl_steer.models import tiny_arch_model, tiny_hf_model

POS = ("I love this, it is great", "what a wonderful day", "happy and kind words", "a lovely gift", "so glad")
NEG = ("I hate this, it is awful", "what a terrible day", "angry and cruel words", "a nasty insult", "so sad")
TEXTS = ["a short one", "and a much longer prompt here"]


@pytest.fixture(scope="module")
def pair():
    bridge, hf = tiny_hf_model(n_layers=3, with_hf=True)
    return bridge, hf


def _bridge_logits(bridge, method) -> torch.Tensor:
    out = []
    for text in TEXTS:
        ids = bridge.tokenizer(text, return_tensors="pt").input_ids
        with ts.steer(bridge, method.hooks(bridge, positions="all")):
            out.append(bridge(ids).float())
    return torch.cat(out, 1)


@torch.no_grad()
def _hf_logits(bridge, hf) -> torch.Tensor:
    return torch.cat([hf(input_ids=bridge.tokenizer(t, return_tensors="pt").input_ids).logits.float() for t in TEXTS], 1)


def test_steering_vectors_both_ways(pair):
    sv_lib = pytest.importorskip("steering_vectors")
    bridge, hf = pair
    caa = ts.fit("caa", bridge, [ts.ContrastSet("m", POS, NEG)], ts.FitOptions(layer=2, progress=False)).with_strength(3.0)
    sv = interop.to_steering_vectors(caa, bridge)
    assert isinstance(sv, sv_lib.SteeringVector) and sv.layer_type == "decoder_block"
    assert set(sv.layer_activations) == {1}  # blocks.2.hook_resid_pre is layer 1's output
    want = _bridge_logits(bridge, caa)
    with sv.apply(hf, multiplier=1.0):
        got = _hf_logits(bridge, hf)
    print(f"[interop] to_steering_vectors: max |Δ logit| {(got - want).abs().max():.1e}")
    assert (got - want).abs().max() < 1e-4
    assert (_hf_logits(bridge, hf) - want).abs().max() > 1e-2  # it did steer
    # and back, with the multiplier as strength
    back = interop.from_steering_vectors(sv, bridge, multiplier=0.5)
    assert back.hook_names() == ["blocks.1.hook_resid_post"] and back.strength == 0.5
    with sv.apply(hf, multiplier=0.5):
        got = _hf_logits(bridge, hf)
    print(f"[interop] from_steering_vectors: max |Δ logit| {(got - _bridge_logits(bridge, back)).abs().max():.1e}")
    assert (got - _bridge_logits(bridge, back)).abs().max() < 1e-4


@pytest.mark.parametrize("layer_type, hook", [("self_attn", "blocks.1.hook_attn_out"), ("mlp", "blocks.0.hook_mlp_out")])
def test_steering_vectors_module_outputs(pair, layer_type, hook):
    sv_lib = pytest.importorskip("steering_vectors")
    bridge, hf = pair
    layer = int(hook.split(".")[1])
    v = torch.randn(bridge.cfg.d_model, generator=torch.Generator().manual_seed(3))
    sv = sv_lib.SteeringVector({layer: v}, layer_type)
    mine = interop.from_steering_vectors(sv, bridge, multiplier=2.0)
    assert mine.hook_names() == [hook]
    with sv.apply(hf, multiplier=2.0):
        got = _hf_logits(bridge, hf)
    assert (got - _bridge_logits(bridge, mine)).abs().max() < 1e-4
    assert interop.to_steering_vectors(mine, bridge).layer_type == layer_type


def test_steering_vectors_refusals(pair):
    sv_lib = pytest.importorskip("steering_vectors")
    bridge, _ = pair
    v = torch.ones(bridge.cfg.d_model)
    with pytest.raises(ts.SteeringError, match="layernorm"):
        interop.from_steering_vectors(sv_lib.SteeringVector({0: v}, "input_layernorm"), bridge)
    with pytest.raises(ts.SteeringError, match="3 layers"):
        interop.from_steering_vectors(sv_lib.SteeringVector({5: v}), bridge)
    mixed = SteeringVectors({"blocks.1.hook_resid_post": v, "blocks.1.hook_mlp_out": v})
    with pytest.raises(ts.SteeringError, match="one layer type"):
        interop.to_steering_vectors(mixed, bridge)
    gemma, _ = tiny_arch_model("gemma2")
    with pytest.raises(ts.SteeringError, match="post-norms"):
        interop.from_steering_vectors(sv_lib.SteeringVector({0: torch.ones(gemma.cfg.d_model)}, "mlp"), gemma)


def test_repeng_both_ways(pair):
    with pytest.warns(UserWarning, match="float_") if not hasattr(__import__("numpy"), "float_") else _nothing():
        repeng = interop.import_repeng()
    bridge, hf = pair
    caa = ts.fit("caa", bridge, [ts.ContrastSet("m", POS, NEG)], ts.FitOptions(layer=1, site="resid_post",
                                                                               progress=False)).with_strength(3.0)
    cv = interop.to_repeng(caa, bridge)
    assert isinstance(cv, repeng.ControlVector) and cv.model_type == "llama" and set(cv.directions) == {1}
    controlled = repeng.ControlModel(copy.deepcopy(hf), [1])
    controlled.set_control(cv, coeff=1.0)
    want = _bridge_logits(bridge, caa)
    got = _hf_logits(bridge, controlled)
    print(f"[interop] to_repeng: max |Δ logit| {(got - want).abs().max():.1e}")
    assert (got - want).abs().max() < 1e-4
    # negative layer ids count from the end, as repeng's ControlModel counts them
    back = interop.from_repeng(repeng.ControlVector("llama", {-2: cv.directions[1]}), bridge, coeff=1.0)
    assert back.hook_names() == ["blocks.1.hook_resid_post"]
    assert (_bridge_logits(bridge, back) - want).abs().max() < 1e-5
    with pytest.raises(ts.SteeringError, match="residual stream"):
        interop.to_repeng(SteeringVectors({"blocks.1.hook_mlp_out": torch.ones(bridge.cfg.d_model)}), bridge)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False
