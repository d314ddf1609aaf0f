"""Steering without the bridge: run a method's TransformerLens hook list on the plain Hugging Face model.

The ``TransformerBridge`` costs time on every forward (on SmolLM2 on CPU about 1.3x a plain HF decode step; see
``benchmarks/bench_overhead.py``). For generation and evaluation at scale, [`hf_steer`][tl_steer.fast.hf_steer] lowers the same hooks
onto PyTorch hooks of the HF modules the TL hook names stand for, with the same position scopes (a position tracker
on the HF model plays the bridge's):

| TL hook | HF module hook (Llama-style decoder layer ``model.layers[L]``) |
|---|---|
| ``blocks.L.hook_resid_pre`` | pre-hook on the layer: its ``hidden_states`` input |
| ``blocks.L.hook_resid_post`` | hook on the layer: its output |
| ``blocks.L.attn.hook_z`` | pre-hook on ``self_attn.o_proj``: its input viewed as ``(batch, pos, head, d_head)`` |
| ``blocks.L.mlp.hook_post`` | pre-hook on ``mlp.down_proj``: its input |
| ``blocks.L.hook_mlp_out`` | hook on ``mlp``: its output |
| ``blocks.L.hook_attn_out`` | hook on ``self_attn``: the first element of its output |

Architectures with post-norms (Gemma: ``post_attention_layernorm`` *after* attention) and ``hook_resid_mid`` are
refused: their TL hooks are not one HF tensor. The HF model must hold the bridge's weights (for example
``models.load_hf`` of the same name, or ``models.tiny_hf_model(with_hf=True)``); tests check that tokens and logits
equal the bridge path for every method and scope.

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
from .core import (
    HookBlock,
    HookFn,
    Scoped,
    ThreadBound,
    check_hook_pairs,
    flatten_hooks,
    model_lock,
    module_tracker,
    tracker_for,
)
from .errors import HookNameError, SteeringError
from .sites import Site, site_of


@dataclass(frozen=True)
class _Name:
    """What a lowered hook function receives as ``hook``: the TL name it was built for."""

    name: str


def _layers(hf_model: torch.nn.Module) -> Any:
    inner = getattr(hf_model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise SteeringError(
            f"{type(hf_model).__name__} has no model.layers: the fast path supports Llama-style decoder stacks"
        )
    return layers


def _replace_first(args: tuple, kwargs: dict, key: str, fn: Any) -> tuple[tuple, dict]:
    if args:
        return (fn(args[0]), *args[1:]), kwargs
    return args, {**kwargs, key: fn(kwargs[key])}


def _lower(hf_model: torch.nn.Module, name: str, fn: HookFn, n_heads: int) -> Any:
    """Register ``fn`` (a TL hook function) on the HF module ``name`` stands for; returns the handle."""
    layer, site = site_of(name)
    block = _layers(hf_model)[layer]
    if hasattr(block, "post_feedforward_layernorm") or hasattr(block, "pre_feedforward_layernorm"):
        raise SteeringError(
            f"{type(block).__name__} has post-norms: TL's {name!r} is not one HF tensor there; steer through the bridge"
        )
    hook = _Name(name)
    if site is Site.RESID_PRE:
        return block.register_forward_pre_hook(
            lambda m, a, k: _replace_first(a, k, "hidden_states", lambda x: fn(x, hook=hook)), with_kwargs=True)
    if site is Site.RESID_POST:
        def post(m: Any, a: Any, k: Any, out: Any) -> Any:
            return (fn(out[0], hook=hook), *out[1:]) if isinstance(out, tuple) else fn(out, hook=hook)
        return block.register_forward_hook(post, with_kwargs=True)
    if site is Site.Z:
        def z(x: torch.Tensor) -> torch.Tensor:
            b, p, d = x.shape
            return fn(x.reshape(b, p, n_heads, d // n_heads), hook=hook).reshape(b, p, d)
        return block.self_attn.o_proj.register_forward_pre_hook(
            lambda m, a, k: _replace_first(a, k, "input", z), with_kwargs=True)
    if site is Site.MLP_POST:
        return block.mlp.down_proj.register_forward_pre_hook(
            lambda m, a, k: _replace_first(a, k, "input", lambda x: fn(x, hook=hook)), with_kwargs=True)
    if site is Site.MLP_OUT:
        return block.mlp.register_forward_hook(lambda m, a, out: fn(out, hook=hook))
    if site is Site.ATTN_OUT:
        return block.self_attn.register_forward_hook(
            lambda m, a, out: (fn(out[0], hook=hook), *out[1:]) if isinstance(out, tuple) else fn(out, hook=hook))
    raise HookNameError(f"{name!r}: the fast path does not lower {site.value!r} (not one HF tensor); use the bridge")


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
        pairs = flatten_hooks(hooks)
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
