"""Steering without the bridge: run a method's TransformerLens hook list on the plain Hugging Face model.

The ``TransformerBridge`` costs time on every forward (on SmolLM2 on CPU about 1.3x a plain HF decode step; see
``benchmarks/bench_overhead.py``). For generation and evaluation at scale, [`hf_steer`][tl_steer.fast.hf_steer] lowers the same hooks
onto PyTorch hooks of the HF modules the TL hook names stand for, with the same position scopes (a position tracker
on the HF model plays the bridge's).

Where each TL hook lives in the HF model is the architecture's site table
([`tl_steer.arch.ARCH_SITES`][tl_steer.arch.ARCH_SITES]): ``resid_pre`` / ``resid_post`` are the decoder layer's input
and output, ``z`` the input of the attention output projection (viewed as ``(batch, pos, head, d_head)``),
``mlp_post`` the input of the MLP's down projection, ``attn_out`` / ``mlp_out`` the outputs of the modules the table
names (Gemma 2 and 3: the post-norms' outputs). Tables exist for Llama, Mistral, Qwen2, Qwen3, Phi-3, Gemma,
Gemma 2, Gemma 3, GPT-2, GPT-NeoX, GPT-J, OPT, Falcon and BLOOM; every entry is tested against the bridge (same logits
within 1e-4, same greedy tokens with the KV cache). ``resid_mid`` (a sum inside the layer) and BLOOM's ``attn_out`` /
``mlp_out`` (BLOOM adds the residual inside those modules) are not one HF tensor and are refused with that reason.
The HF model must hold the bridge's weights (for example ``models.load_hf`` of the same name, or
``models.tiny_hf_model(with_hf=True)``). Plain HF GPT-2 does not derive position ids from a left-padded attention
mask (the bridge does): pass ``position_ids`` for left-padded GPT-2 batches.

    hooks = method.hooks(bridge, positions="last_prompt+generated")     # built for the bridge, as always
    with hf_steer(bridge, hf_model, hooks):
        out = hf_model.generate(**enc, max_new_tokens=30, do_sample=False)
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any

import torch

from ._types import TransformerBridge
from .arch import submodule
from .core import (
    HookBlock,
    HookFn,
    Scoped,
    ThreadBound,
    check_hook_pairs,
    expand_filters,
    flatten_hooks,
    model_lock,
    module_tracker,
    tracker_for,
)
from .errors import HookNameError, SteeringError
from .sites import Site, hf_tensor, hook_name, site_of


@dataclass(frozen=True)
class _Name:
    """What a lowered hook function receives as ``hook``: the TL name it was built for."""

    name: str


def _replace_first(args: tuple, kwargs: dict, key: str, fn: Any) -> tuple[tuple, dict]:
    if args:
        return (fn(args[0]), *args[1:]), kwargs
    return args, {**kwargs, key: fn(kwargs[key])}


@dataclass(frozen=True)
class _Handles:
    """Several PyTorch hook handles removed together."""

    handles: list[Any]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _first(out: Any, fn: Any) -> Any:
    """``fn`` applied to a module's output, or to the first element of a tuple output."""
    return (fn(out[0]), *out[1:]) if isinstance(out, tuple) else fn(out)


def _lower(hf_model: torch.nn.Module, name: str, fn: HookFn, n_heads: int) -> Any:
    """Register ``fn`` (a TL hook function) on the HF tensor ``name`` stands for (the architecture's site table,
    [`tl_steer.arch.ARCH_SITES`][tl_steer.arch.ARCH_SITES]); returns the handle."""
    try:
        where = hf_tensor(hf_model, name)
    except HookNameError as e:
        raise HookNameError(f"{name!r} on the fast path: {e}") from None
    module = submodule(hf_model, where.module)
    hook = _Name(name)

    def apply(x: torch.Tensor) -> torch.Tensor:
        if where.heads:  # (batch, pos, d_model) -> the TL view (batch, pos, head, d_head) and back
            b, p, d = x.shape
            return fn(x.reshape(b, p, n_heads, d // n_heads), hook=hook).reshape(b, p, d)
        return fn(x, hook=hook)

    handles = []
    edit = apply
    if where.flat:  # (batch * pos, f) rows: show them as (batch, pos, f), the shape read from the layer's input
        shape: dict[str, tuple[int, int]] = {}

        def record(m: Any, a: tuple, k: dict) -> None:
            x = a[0] if a else k["hidden_states"]
            shape["bp"] = (x.shape[0], x.shape[1])

        def edit(x: torch.Tensor) -> torch.Tensor:
            if x.ndim != 2:
                return apply(x)
            return apply(x.reshape(*shape["bp"], x.shape[-1])).reshape(x.shape)

        handles.append(submodule(hf_model, where.layer).register_forward_pre_hook(record, with_kwargs=True))
    if where.io == "input":
        key = "hidden_states" if where.module == where.layer else "input"
        handles.append(module.register_forward_pre_hook(lambda m, a, k: _replace_first(a, k, key, edit),
                                                        with_kwargs=True))
    else:
        handles.append(module.register_forward_hook(lambda m, a, out: _first(out, edit)))
    return _Handles(handles)


def _check_twin(bridge: TransformerBridge, hf_model: torch.nn.Module) -> None:
    """The HF model must have the bridge's layout (layers, width, heads): hooks index heads and layers."""
    cfg = getattr(hf_model, "config", None)
    if cfg is None:
        raise SteeringError(f"hf_steer needs a Hugging Face model with a .config, got {type(hf_model).__name__}")
    want = {"num_hidden_layers": bridge.cfg.n_layers, "hidden_size": bridge.cfg.d_model,
            "num_attention_heads": bridge.cfg.n_heads}
    have = {k: getattr(cfg, k, None) for k in want}
    bad = {k: (have[k], v) for k, v in want.items() if have[k] is not None and int(have[k]) != int(v)}
    if bad:
        raise SteeringError(
            f"hf_steer: the HF model's layout differs from the bridge's: {', '.join(f'{k} {h} vs {w}' for k, (h, w) in bad.items())} "
            "(HF model vs bridge); pass the Hugging Face twin of the bridge's model (same weights)"
        )


class hf_steer(HookBlock):  # noqa: N801 - used like a function: ``with hf_steer(bridge, hf_model, hooks):``
    """Attach hook lists built for ``bridge`` to ``hf_model`` (the same weights, plain Hugging Face) for one block.

    Args:
        bridge: the model the hooks were built for (``method.hooks(bridge, ...)``).
        hf_model: a Hugging Face causal LM with the bridge's weights (same layers, width and heads: checked).
        *hooks: TL hook lists ``[(hook_name, fn), ...]``.

    Position scopes keep their meaning: the HF model's one position tracker
    ([`module_tracker()`][tl_steer.core.module_tracker]) follows its forwards and ``generate`` (KV cache, left padding),
    and every scoped hook reads it; nested ``hf_steer`` blocks on one model share it. Hooks are removed on exit, also
    on errors. Hooks built for another bridge are refused (as [`steer()`][tl_steer.core.steer] refuses them). One
    object is entered once. Like ``steer``, the block holds the HF model's lock: other threads' blocks wait, and a
    thread that runs the model without steering is not edited.
    """

    _reentry = "this hf_steer(...) block was already entered; create a new one for each `with` block"

    def __init__(self, bridge: TransformerBridge, hf_model: torch.nn.Module, *hooks: Sequence[tuple[str, HookFn]]) -> None:
        super().__init__()
        pairs = expand_filters(bridge, flatten_hooks(hooks))
        _check_twin(bridge, hf_model)
        n_layers = int(bridge.cfg.n_layers)
        for name, _ in pairs:
            m = re.match(r"^blocks\.(\d+)\.", name)
            if not m:
                raise HookNameError(f"{name!r}: the fast path lowers per-layer hooks only (blocks.L....)")
            if int(m.group(1)) >= n_layers:
                raise HookNameError(f"{name!r}: the model has {n_layers} layers (0..{n_layers - 1})")
            site_of(name)  # a steerable site, or a clear HookNameError
        check_hook_pairs(pairs, tracker_for(bridge), "build it for this bridge: method.hooks(bridge)")
        self.bridge, self.hf_model, self.pairs = bridge, hf_model, pairs

    def _open(self, stack: ExitStack) -> Any:
        n_heads = int(self.bridge.cfg.n_heads)
        tracker = module_tracker(self.hf_model)
        stack.enter_context(model_lock(self.hf_model))
        stack.enter_context(tracker.on_module(self.hf_model))
        owner = threading.get_ident()
        for name, fn in self.pairs:
            lowered = replace(fn, tracker=tracker) if isinstance(fn, Scoped) and fn.tracker is not None else fn
            stack.callback(_lower(self.hf_model, name, ThreadBound(lowered, owner), n_heads).remove)
        return self.hf_model


@torch.no_grad()
def check_site_table(bridge: TransformerBridge, hf_model: torch.nn.Module, layer: int = 0,
                     text: str = "The quick brown fox jumps over the lazy dog") -> dict[str, float | str]:
    """Check ``hf_model``'s site table against ``bridge`` (the same weights): for each site, the largest absolute
    difference between the HF tensor the table names (captured with a plain PyTorch hook, one unpadded text) and
    the bridge's activation at that TL hook; for a site the table does not support, its reason. A correct entry
    differs by float error (< 1e-5 in float32); a wrong one by the size of the activations. Run it when adding an
    architecture (docs/adding-an-architecture.md)."""
    _check_twin(bridge, hf_model)
    tokens = bridge.to_tokens([text])
    out: dict[str, float | str] = {}
    for site in Site:
        name = hook_name(layer, site)
        try:
            where = hf_tensor(hf_model, name)
        except HookNameError as e:
            out[site.value] = str(e)
            continue
        if name not in bridge.hook_dict:
            out[site.value] = f"the bridge has no {name!r}"
            continue
        seen: dict[str, torch.Tensor] = {}

        def grab(m: Any, a: tuple, k: dict, o: Any = None, where: Any = where, seen: dict = seen) -> None:
            x = (a[0] if a else next(iter(k.values()))) if where.io == "input" else (o[0] if isinstance(o, tuple) else o)
            seen["x"] = x.detach().clone()

        module = submodule(hf_model, where.module)
        handle = (module.register_forward_pre_hook(lambda m, a, k: grab(m, a, k), with_kwargs=True)
                  if where.io == "input" else
                  module.register_forward_hook(lambda m, a, k, o: grab(m, a, k, o), with_kwargs=True))
        try:
            hf_model(input_ids=tokens.to(next(hf_model.parameters()).device))
        finally:
            handle.remove()
        _, cache = bridge.run_with_cache(tokens, names_filter=[name])
        tl = cache[name].float().cpu()
        got = seen["x"].float().cpu()
        out[site.value] = (float((got.reshape(tl.shape) - tl).abs().max()) if got.numel() == tl.numel()
                           else f"shape {tuple(got.shape)} vs the bridge's {tuple(tl.shape)}")
    return out

