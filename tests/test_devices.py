"""Hooks place their tensors on the activation's device (what a model sharded across devices needs), and hf_steer
works on a model loaded with an accelerate device map."""

from __future__ import annotations

import pytest
import torch

import tl_steer as ts
from tl_steer import registry
from tl_steer.fast import hf_steer
from tl_steer.models import tiny_hf_model
from tl_steer.sites import feature_shape, site_of

POS = ("I love this, it is great", "what a wonderful day", "happy and kind words", "a lovely gift", "so glad")
NEG = ("I hate this, it is awful", "what a terrible day", "angry and cruel words", "a nasty insult", "so sad")


@pytest.fixture(scope="module")
def fitted():
    bridge, hf = tiny_hf_model(with_hf=True)
    sets = [ts.ContrastSet("mood", POS, NEG), ts.ContrastSet("tone", POS[::-1], NEG[::-1])]
    methods = ts.fit_many(registry.names(), bridge, sets, ts.FitOptions(layer=1, k=3, progress=False,
                                                                        extra={"epochs": 2}))
    methods["sadi:mlp_post"] = ts.fit("sadi", bridge, sets, ts.FitOptions(site="mlp_post", k=5, progress=False))
    return bridge, hf, methods


def test_every_hook_follows_the_activation_device(fitted):
    """A hook whose tensors stay on the CPU would fail on an activation elsewhere: the meta device stands for
    "another device" (a CPU tensor and a meta tensor cannot be combined)."""
    bridge, _, methods = fitted

    class Hook:
        def __init__(self, name: str) -> None:
            self.name = name

    seen = 0
    for name, m in methods.items():
        for hook, fn in m.hooks(bridge, positions="all"):
            inner = getattr(fn, "fn", fn)
            shape = (2, 5, *feature_shape(bridge, site_of(hook)[1]))
            out = inner(torch.zeros(shape, device="meta"), hook=Hook(hook))
            assert out.device.type == "meta" and out.shape == shape, (name, hook)
            seen += 1
    assert seen >= len(methods)
    # the negative control: a CPU tensor and a meta activation do not mix
    with pytest.raises((RuntimeError, NotImplementedError)):
        _ = torch.zeros(2, 5, 64, device="meta") + torch.ones(2, 5, 64)


def test_hf_steer_on_a_device_mapped_model(fitted, tmp_path):
    """A model dispatched over a device map (accelerate's device-aligning hooks on every module, as a sharded model
    has them; here every device is the CPU) steers like the bridge."""
    accelerate = pytest.importorskip("accelerate")
    import copy

    bridge, hf, methods = fitted
    device_map = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "cpu", "model.norm": "cpu",
                  "model.rotary_emb": "cpu", "lm_head": "cpu"}
    mapped = accelerate.dispatch_model(copy.deepcopy(hf), device_map=device_map, main_device="cpu", force_hooks=True)
    assert hasattr(mapped.model.layers[1], "_hf_hook")
    ids = bridge.tokenizer("a device mapped model", return_tensors="pt").input_ids
    for name in ("caa", "iti", "sadi:mlp_post", "mat-steer"):
        m = methods[name]
        hooks = m.hooks(bridge, positions="all")
        with ts.steer(bridge, hooks):
            want = bridge(ids).float()
        with hf_steer(bridge, mapped, m.hooks(bridge, positions="all")), torch.no_grad():
            got = mapped(input_ids=ids).logits.float()
        assert (got - want).abs().max() < 1e-4, name
