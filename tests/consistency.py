"""One check shared by every method's tests: steering is the same however generation is run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tl_steer import steer


def assert_generation_consistent(model: Any, hooks: Sequence, prompts: Sequence[str], max_new_tokens: int = 6,
                                 require_change: bool = True) -> list[str]:
    """Greedy generations under ``hooks`` must agree batched (left-padded) vs one-by-one, KV cache on vs off,
    and must differ from the unsteered generations. Returns the steered generations."""
    kw = dict(max_new_tokens=max_new_tokens, do_sample=False, stop_at_eos=False, verbose=False)
    base = model.generate(list(prompts), **kw)
    outs = {}
    with steer(model, hooks):
        for cache in (True, False):
            outs[cache, "batch"] = model.generate(list(prompts), use_past_kv_cache=cache, **kw)
            outs[cache, "single"] = [model.generate(p, use_past_kv_cache=cache, **kw) for p in prompts]
    ref = outs[False, "single"]
    for key, val in outs.items():
        assert val == ref, f"generation differs for (kv_cache, batching) = {key}: {val} vs {ref}"
    if require_change:  # a one-token edit (last_prompt) need not change a few greedy tokens of a real model
        assert ref != base, "the steering should change the generations"
    return ref


def assert_batched_equals_single(model: Any, hooks: Sequence, prompts: Sequence[str], sides: Sequence[str] = ("left", "right"),
                                 atol: float = 1e-4, what: str = "") -> None:
    """Logits of a padded batch (each padding side) equal each prompt's one-by-one run at its real positions."""
    import torch

    with steer(model, hooks):
        single = [model(p) for p in prompts]
        for side in sides:
            batched = model(list(prompts), padding_side=side)
            width = batched.shape[1]
            for r, one in enumerate(single):
                n = one.shape[1]
                rows = batched[r, :n] if side == "right" else batched[r, width - n:]
                torch.testing.assert_close(rows, one[0], atol=atol, rtol=1e-4,
                                           msg=f"{what} {side}: row {r} ({prompts[r]!r}) differs from its single run")
