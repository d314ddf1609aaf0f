"""The bridge-free fast path: a method's hooks lowered onto the plain Hugging Face model give the same logits and the
same greedy tokens as the bridge, for every registered method and every position scope."""

from __future__ import annotations

import pytest
import torch

import tl_steer as ts
from tl_steer import registry
from tl_steer.errors import HookNameError
from tl_steer.fast import hf_steer
from tl_steer.models import tiny_hf_model

POS = ("I love this, it is great", "what a wonderful day", "happy and kind words", "a lovely gift", "so glad")
NEG = ("I hate this, it is awful", "what a terrible day", "angry and cruel words", "a nasty insult", "so sad")
SCOPES = ["all", "prompt", "generated", "last_prompt", "last_prompt+generated"]


@pytest.fixture(scope="module")
def pair():
    bridge, hf = tiny_hf_model(with_hf=True)
    sets = [ts.ContrastSet("mood", POS, NEG), ts.ContrastSet("tone", POS[::-1], NEG[::-1])]
    fitted = ts.fit_many(registry.names(), bridge, sets, ts.FitOptions(layer=1, k=3, progress=False, extra={"epochs": 3}))
    fitted["sadi:mlp_post"] = ts.fit("sadi", bridge, sets, ts.FitOptions(site="mlp_post", k=5, progress=False))
    fitted["caa:resid_post"] = ts.fit("caa", bridge, sets, ts.FitOptions(layer=0, site="resid_post", progress=False))
    return bridge, hf, fitted


def _strength(name: str) -> float:
    return 8.0 if name.startswith("sadi") else 3.0


@pytest.mark.parametrize("scope", SCOPES)
def test_same_logits_as_the_bridge(pair, scope):
    bridge, hf, fitted = pair
    toks = bridge.to_tokens(["a short one", "a much longer prompt here"], padding_side="left")
    mask = (toks != bridge.tokenizer.pad_token_id).long()
    mask[:, -1] = 1
    real = mask.bool()  # padded positions' logits are meaningless (and computed differently)
    with torch.no_grad():
        torch.testing.assert_close(hf(input_ids=toks, attention_mask=mask).logits[real],
                                   bridge(toks, attention_mask=mask)[real], atol=1e-4, rtol=1e-4)  # same weights
        for name, method in fitted.items():
            hooks = method.hooks(bridge, positions=scope, strength=_strength(name))
            with ts.steer(bridge, hooks):
                want = bridge(toks, attention_mask=mask)[real]
            with hf_steer(bridge, hf, hooks):
                got = hf(input_ids=toks, attention_mask=mask).logits[real]
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4, msg=f"{name} at {scope}")


@pytest.mark.parametrize("scope", SCOPES)
def test_same_greedy_tokens_as_the_bridge_with_the_kv_cache(pair, scope):
    bridge, hf, fitted = pair
    changed = 0
    for prompt in ("The movie was", "Hi there, I think"):
        toks = bridge.to_tokens(prompt)
        with torch.no_grad():
            base = hf.generate(input_ids=toks, max_new_tokens=6, min_new_tokens=6, do_sample=False)
        for name, method in fitted.items():
            hooks = method.hooks(bridge, positions=scope, strength=_strength(name))
            with ts.steer(bridge, hooks), torch.no_grad():
                want = bridge.generate(toks, max_new_tokens=6, do_sample=False, stop_at_eos=False, verbose=False)
            with hf_steer(bridge, hf, hooks), torch.no_grad():
                got = hf.generate(input_ids=toks, max_new_tokens=6, min_new_tokens=6, do_sample=False)
            assert torch.equal(got, want), f"{name} at {scope}: {got.tolist()} vs {want.tolist()}"
            changed += not torch.equal(got, base)
    assert changed > 0


def test_hooks_are_removed_and_unsupported_sites_refused(pair):
    bridge, hf, fitted = pair
    toks = bridge.to_tokens("check removal")
    with torch.no_grad():
        before = hf(input_ids=toks).logits
        with pytest.raises(RuntimeError, match="boom"), hf_steer(bridge, hf, fitted["caa"].hooks(bridge, strength=5.0)):
            raise RuntimeError("boom")
        torch.testing.assert_close(hf(input_ids=toks).logits, before)
    assert "generate" not in vars(hf)
    with pytest.raises(HookNameError, match="resid_mid"), hf_steer(bridge, hf, [("blocks.0.hook_resid_mid", lambda a, hook: a)]):
        pass
