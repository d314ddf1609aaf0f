"""Every architecture family the bridge boots has a site table (tl_steer.arch.ARCH_SITES), and the fast path built
from it equals the bridge: the same logits within 1e-4 for every site (left-padded batch) and the same greedy
tokens with the KV cache. Sites that are not one HF tensor in a family are refused with the table's reason."""

from __future__ import annotations

import inspect

import pytest
import torch

import tl_steer as ts
from tl_steer.arch import ARCH_SITES
from tl_steer.errors import HookNameError
from tl_steer.fast import hf_steer
from tl_steer.models import tiny_arch_configs, tiny_arch_model

SITES = ("resid_pre", "resid_post", "z", "mlp_post", "attn_out", "mlp_out")


def test_every_table_has_a_tested_architecture():
    assert set(tiny_arch_configs()) == set(ARCH_SITES)


@pytest.fixture(scope="module", params=sorted(ARCH_SITES))
def twins(request):
    bridge, twin = tiny_arch_model(request.param)
    assert twin.config.model_type == request.param
    return request.param, bridge, twin


def _add(bridge, site: str, seed: int = 2):
    vec = torch.randn(*ts.sites.feature_shape(bridge, site), generator=torch.Generator().manual_seed(seed))
    return lambda a, hook: a + vec


def test_same_logits_at_every_site(twins):
    arch, bridge, twin = twins
    toks = bridge.to_tokens(["a short one", "a much longer prompt here"], padding_side="left")
    mask = (toks != bridge.tokenizer.pad_token_id).long()
    mask[:, -1] = 1
    real = mask.bool()
    extra = {}
    if "position_ids" in inspect.signature(twin.forward).parameters:
        # left padding: positions count real tokens, as the bridge counts them (plain HF GPT-2 would not)
        extra["position_ids"] = (mask.cumsum(-1) - 1).clamp_min(0)
    table = ARCH_SITES[arch]
    lowered = 0
    with torch.no_grad():
        base = twin(input_ids=toks, attention_mask=mask, **extra).logits[real]
        for site in SITES:
            name = ts.hook_name(1, site)
            hooks = [(name, ts.scoped(_add(bridge, site), "all", bridge))]
            if ts.sites.parse_site(site) in table.unsupported:
                with pytest.raises(HookNameError, match="residual inside"), hf_steer(bridge, twin, hooks):
                    pass
                continue
            with ts.steer(bridge, hooks):
                want = bridge(toks, attention_mask=mask)[real]
            with hf_steer(bridge, twin, hooks):
                got = twin(input_ids=toks, attention_mask=mask, **extra).logits[real]
            assert (want - base).abs().max() > 1e-2, f"{arch} {site}: the edit changes nothing, the check is vacuous"
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4, msg=f"{arch} at {site}")
            lowered += 1
    assert lowered >= 4
    with pytest.raises(HookNameError, match="resid_mid"), hf_steer(bridge, twin, [("blocks.0.hook_resid_mid", _add(bridge, "resid_pre"))]):
        pass


def _greedy_with_cache(model, toks: torch.Tensor, n: int) -> torch.Tensor:
    """Greedy decoding by hand: one forward over the prompt, then one token at a time on the KV cache."""
    out = model(input_ids=toks, use_cache=True)
    seq = toks
    for _ in range(n):
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], 1)
        out = model(input_ids=nxt, past_key_values=out.past_key_values, use_cache=True)
    return seq


def test_same_greedy_tokens_with_the_kv_cache(twins):
    """HF ``generate`` on OPT (transformers 5.23) gives first-step logits 0.39 away from its own forward pass with no
    hooks at all, so OPT is decoded by hand on the KV cache; every other family uses ``generate``."""
    arch, bridge, twin = twins
    toks = bridge.to_tokens("The movie was")
    for site in ("resid_pre", "z", "mlp_post"):
        hooks = [(ts.hook_name(1, site), ts.scoped(_add(bridge, site, seed=5), "last_prompt+generated", bridge))]
        with ts.steer(bridge, hooks), torch.no_grad():
            want = bridge.generate(toks, max_new_tokens=6, do_sample=False, stop_at_eos=False, verbose=False)
        with hf_steer(bridge, twin, hooks), torch.no_grad():
            if arch == "opt":
                got = _greedy_with_cache(twin, toks, 6)
            else:
                got = twin.generate(input_ids=toks, max_new_tokens=6, min_new_tokens=6, do_sample=False)
        assert torch.equal(got, want), f"{arch} at {site}: {got.tolist()} vs {want.tolist()}"


def test_each_table_entry_is_the_tensor_the_bridge_hooks(twins):
    """sites.hf_tensor reads the table, and the HF tensor it names (captured with a plain PyTorch hook on the twin) is
    the bridge's activation at that TL hook, for every site the table supports (fast.check_site_table)."""
    from tl_steer.fast import check_site_table
    from tl_steer.sites import hf_tensor

    arch, bridge, twin = twins
    table = ARCH_SITES[arch]
    for layer in (0, 1):
        report = check_site_table(bridge, twin, layer=layer)
        assert set(report) == {s.value for s in ts.Site}
        for site, err in report.items():
            if site == "resid_mid" or site in table.unsupported:
                assert isinstance(err, str) and ("residual inside" in err or "resid_mid" in err), (arch, site, err)
            else:
                assert isinstance(err, float) and err < 1e-5, (arch, site, err)
    where = hf_tensor(bridge, ts.hook_name(1, "z"))
    assert where == hf_tensor(twin, ts.hook_name(1, "z")) and where.heads and str(where).startswith("input of ")


def test_the_check_catches_a_wrong_table(twins):
    """Negative control: with attn_out and mlp_out swapped, check_site_table reports activation-sized errors."""
    import dataclasses

    from tl_steer.fast import check_site_table

    arch, bridge, twin = twins
    table = ARCH_SITES[arch]
    if {"attn_out", "mlp_out"} & set(table.unsupported):
        pytest.skip(f"{arch} supports neither attn_out nor mlp_out")
    wrong = dataclasses.replace(table, attn_out=table.mlp_out, mlp_out=table.attn_out)
    try:
        ARCH_SITES[arch] = wrong
        report = check_site_table(bridge, twin, layer=1)
    finally:
        ARCH_SITES[arch] = table
    assert report["attn_out"] > 1e-2 and report["mlp_out"] > 1e-2, report
    assert report["resid_post"] < 1e-5
