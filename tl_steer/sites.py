"""Hook sites: map ``(layer, site)`` to TransformerLens hook names and check names and activation shapes.

The names are TransformerLens' legacy spellings, which TL 4.x resolves as aliases of the bridge's canonical names
(``blocks.3.hook_resid_post`` is ``blocks.3.hook_out``; the hook callee sees the canonical ``hook.name``).
"""

from __future__ import annotations

import difflib
import re
import weakref
from enum import StrEnum
from typing import Any

import torch

from ._types import TransformerBridge
from .arch import HFTensor, arch_sites
from .errors import HookNameError, ShapeError


class Site(StrEnum):
    """Where a steering method reads and edits activations."""

    RESID_PRE = "resid_pre"  #: ``blocks.L.hook_resid_pre``, (batch, pos, d_model)
    RESID_MID = "resid_mid"  #: ``blocks.L.hook_resid_mid``, (batch, pos, d_model)
    RESID_POST = "resid_post"  #: ``blocks.L.hook_resid_post``, (batch, pos, d_model)
    ATTN_OUT = "attn_out"  #: ``blocks.L.hook_attn_out``, (batch, pos, d_model)
    MLP_OUT = "mlp_out"  #: ``blocks.L.hook_mlp_out``, (batch, pos, d_model)
    Z = "z"  #: ``blocks.L.attn.hook_z``, per-head outputs before W_O, (batch, pos, head, d_head)
    MLP_POST = "mlp_post"  #: ``blocks.L.mlp.hook_post``, MLP neurons, (batch, pos, d_mlp)


_TEMPLATES = {
    Site.RESID_PRE: "blocks.{layer}.hook_resid_pre",
    Site.RESID_MID: "blocks.{layer}.hook_resid_mid",
    Site.RESID_POST: "blocks.{layer}.hook_resid_post",
    Site.ATTN_OUT: "blocks.{layer}.hook_attn_out",
    Site.MLP_OUT: "blocks.{layer}.hook_mlp_out",
    Site.Z: "blocks.{layer}.attn.hook_z",
    Site.MLP_POST: "blocks.{layer}.mlp.hook_post",
}
_NAME_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")


def hook_name(layer: int, site: Site | str) -> str:
    """``hook_name(3, "z") == "blocks.3.attn.hook_z"``."""
    site = parse_site(site)
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise HookNameError(f"layer must be a non-negative int, got {layer!r}")
    return _TEMPLATES[site].format(layer=layer)


def parse_site(site: Site | str) -> Site:
    """A [`Site`][tl_steer.sites.Site] from itself or its name, with a clear error for unknown names."""
    try:
        return Site(site)
    except ValueError:
        raise HookNameError(
            f"unknown site {site!r}; expected one of {[s.value for s in Site]}"
        ) from None


def site_of(name: str, model: TransformerBridge | None = None) -> tuple[int, Site]:
    """Inverse of [`hook_name()`][tl_steer.sites.hook_name]. Legacy names (``blocks.3.hook_attn_out``) resolve on their own; any other name
    of a model's hook (a canonical bridge name such as ``blocks.3.attn.hook_out``) resolves through ``model``'s own
    alias table: it is a site only if it is *the same HookPoint* as one of the site's legacy names.

    A fixed canonical-name map would be wrong: on post-norm architectures (Gemma) ``attn.hook_out`` is the tensor
    *before* the post-attention norm, not ``hook_attn_out``.
    """
    m = _NAME_RE.match(name)
    if m:
        layer = int(m.group(1))
        for site, template in _TEMPLATES.items():
            if template.format(layer=layer) == name:
                return layer, site
        hook_dict = getattr(model, "hook_dict", None) if model is not None else None
        if hook_dict is not None and name in hook_dict:
            for site, template in _TEMPLATES.items():
                legacy = template.format(layer=layer)
                if hook_dict.get(legacy) is hook_dict[name]:
                    return layer, site
            canonical = getattr(hook_dict[name], "name", name)
            raise HookNameError(
                f"{name!r} (the model's {canonical!r}) is not a steerable site on this model: it is not the same hook "
                f"as any of {[t.format(layer=layer) for t in _TEMPLATES.values()]}. Use those names "
                "(tl_steer.sites.hook_name(layer, site))."
            )
        if model is None and name in _canonical_names(layer):
            raise HookNameError(
                f"{name!r} is a canonical bridge name, whose meaning depends on the architecture; resolve it with "
                f"the model (site_of(name, model)) or use the legacy name (tl_steer.sites.hook_name(layer, site))"
            )
    raise HookNameError(
        f"{name!r} is not a steerable site; expected a name like "
        f"{[t.format(layer=0) for t in _TEMPLATES.values()]}"
    )


def hf_tensor(model: Any, name: str) -> HFTensor:
    """Where the TL hook ``name`` is in the Hugging Face model, from the architecture's site table
    ([`tl_steer.arch.ARCH_SITES`][tl_steer.arch.ARCH_SITES]); ``model`` is a bridge (its ``original_model`` is read)
    or the HF model itself. ``str()`` of the result reads like ``"input of model.layers.3.self_attn.o_proj, viewed as
    (batch, pos, head, d_head)"``. The fast path ([`tl_steer.fast.hf_steer`][tl_steer.fast.hf_steer]) hooks exactly
    there; the tests check every entry's tensor against the bridge's activation."""
    hf = getattr(model, "original_model", model)
    layer, site = site_of(name, model if hasattr(model, "hook_dict") else None)
    return arch_sites(hf).locate(layer, site)


def _canonical_names(layer: int) -> set[str]:
    return {f"blocks.{layer}.{suffix}" for suffix in
            ("hook_in", "hook_out", "ln2.hook_in", "attn.hook_out", "mlp.hook_out", "attn.o.hook_in", "mlp.out.hook_in")}


def validate_hook_name(model: TransformerBridge, name: str) -> str:
    """Return ``name`` if the model has it, else raise [`HookNameError`][tl_steer.errors.HookNameError] listing near matches."""
    hook_dict = model.hook_dict
    if name in hook_dict:
        return name
    near = difflib.get_close_matches(name, list(hook_dict), n=5, cutoff=0.6)
    n_layers = getattr(getattr(model, "cfg", None), "n_layers", None)
    hint = f" The model has {n_layers} layers (0..{n_layers - 1})." if n_layers else ""
    raise HookNameError(
        f"hook {name!r} does not exist on this model.{hint} Near matches: {near or 'none'}. "
        "Use tl_steer.sites.hook_name(layer, site) to build names."
    )


_SHAPES: weakref.WeakKeyDictionary[Any, dict[str, tuple[int, ...]]] = weakref.WeakKeyDictionary()


def feature_shape(model: TransformerBridge, site: Site | str) -> tuple[int, ...]:
    """Trailing activation shape of a site on ``model`` (what follows ``batch pos``), read from the model's own
    activations (one token through layer 0, once per model), not from its config: on OPT with
    ``ffn_dim != 4 * hidden`` TransformerLens' ``cfg.d_mlp`` is wrong. Falls back to the config for models that
    cannot run (no weights)."""
    site = parse_site(site)
    try:
        shapes = _SHAPES.get(model)
    except TypeError:  # not weak-referenceable
        shapes = None
    if shapes is None:
        shapes = _probe_shapes(model)
        try:
            _SHAPES[model] = shapes
        except TypeError:
            pass
    if site.value in shapes:
        return shapes[site.value]
    cfg = model.cfg
    if site is Site.Z:
        return (cfg.n_heads, cfg.d_head)
    if site is Site.MLP_POST:
        return (cfg.d_mlp,)
    return (cfg.d_model,)


def _probe_shapes(model: TransformerBridge) -> dict[str, tuple[int, ...]]:
    names = {s.value: hook_name(0, s) for s in Site}
    hook_dict = getattr(model, "hook_dict", None) or {}
    present = {k: v for k, v in names.items() if v in hook_dict}
    run = getattr(model, "run_with_cache", None)
    if not present or not callable(run):
        return {}
    device = getattr(getattr(model, "cfg", None), "device", None) or "cpu"
    try:
        with torch.no_grad():
            _, cache = run(torch.zeros((1, 1), dtype=torch.long, device=device), names_filter=list(present.values()),
                           stop_at_layer=1 if getattr(model.cfg, "n_layers", 1) > 1 else None,
                           return_cache_object=False)
    except Exception:  # noqa: BLE001 - a model that cannot run (meta weights, ...): the config is all there is
        return {}
    return {k: tuple(int(x) for x in cache[v].shape[2:]) for k, v in present.items() if v in cache}


def check_activation(
    activation: torch.Tensor, hook: Any, trailing: tuple[int, ...], what: str = "steering method"
) -> None:
    """Raise [`ShapeError`][tl_steer.errors.ShapeError] unless ``activation`` is ``(batch, pos, *trailing)``."""
    if activation.ndim != 2 + len(trailing) or tuple(activation.shape[2:]) != tuple(trailing):
        name = getattr(hook, "name", hook)
        raise ShapeError(
            f"{what} at hook {name!r} expects an activation of shape (batch, pos, "
            f"{', '.join(map(str, trailing))}) but got {tuple(activation.shape)}. "
            "Was the method fitted on another site or model? Attach it to the site it was fitted on."
        )
