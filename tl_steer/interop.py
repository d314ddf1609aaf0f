"""Moving vectors between tl_steer and the steering libraries people already use: steering-vectors and repeng.

Layer conventions (each library counts decoder layers from 0 and edits a module's *output*):

| library | what it edits | TL hook |
|---|---|---|
| steering-vectors ``SteeringVector(layer_activations={L: v})``, ``layer_type="decoder_block"`` | output of decoder layer L | ``blocks.L.hook_resid_post`` (= ``blocks.{L+1}.hook_resid_pre``) |
| steering-vectors ``layer_type="self_attn"`` / ``"mlp"`` | output of layer L's attention / MLP module | ``blocks.L.hook_attn_out`` / ``blocks.L.hook_mlp_out`` (not on Gemma 2/3, whose TL sites are the post-norms' outputs) |
| repeng ``ControlVector(directions={L: v})`` with ``ControlModel(model, layer_ids)`` | output of decoder layer L (negative L counts from the end) | ``blocks.L.hook_resid_post`` |
| llama.cpp ``direction.N`` ([`tl_steer.exporting`][tl_steer.exporting]) | output of layer N, N >= 1 | ``blocks.N.hook_resid_post`` |

Strengths: steering-vectors' ``multiplier`` and repeng's ``coeff`` scale the vector as tl_steer's ``strength`` does,
so ``from_*`` keeps the vector and takes the multiplier as the strength, and ``to_*`` bakes tl_steer's strength into
the vector (apply it with multiplier / coeff 1). Both libraries edit every position, padding included (repeng masks
left padding when it is given ``position_ids``); tl_steer's ``positions="all"`` never edits padding, so real
tokens agree. repeng's ``normalize=True`` option and its ``operator`` are not tl_steer edits and are not mapped.
"""

from __future__ import annotations

from typing import Any

import torch

from ._types import TransformerBridge
from .arch import arch_sites
from .errors import SteeringError
from .exporting import layer_output_shifts, model_type, static_edits
from .methods.vector import SteeringVectors
from .sites import Site, hook_name

#: steering-vectors' layer types that are one TL hook, and that hook's site
SV_LAYER_TYPES = {"decoder_block": Site.RESID_POST, "self_attn": Site.ATTN_OUT, "mlp": Site.MLP_OUT}


def _n_layers(model: TransformerBridge) -> int:
    return int(model.cfg.n_layers)


def _check_post_norm(model: TransformerBridge, site: Site) -> None:
    hf = getattr(model, "original_model", None)
    if site in (Site.ATTN_OUT, Site.MLP_OUT) and hf is not None and arch_sites(hf).post_norm:
        raise SteeringError(
            f"{hf.config.model_type!r} normalises the attention and MLP outputs (post-norms): steering-vectors' "
            f"'{'self_attn' if site is Site.ATTN_OUT else 'mlp'}' output is before the norm, TL's {site.value} after "
            "it; there is no TL hook for it (use layer_type='decoder_block')"
        )


def from_steering_vectors(sv: Any, model: TransformerBridge, multiplier: float = 1.0) -> SteeringVectors:
    """A steering-vectors ``SteeringVector`` as tl_steer ``SteeringVectors`` on ``model`` (``multiplier`` becomes
    the strength)."""
    layer_type = getattr(sv, "layer_type", None)
    acts = getattr(sv, "layer_activations", None)
    if not isinstance(acts, dict):
        raise SteeringError(f"expected a steering_vectors.SteeringVector, got {type(sv).__name__}")
    if layer_type not in SV_LAYER_TYPES:
        raise SteeringError(f"steering-vectors layer_type {layer_type!r} is not one TL hook; supported: "
                            f"{sorted(SV_LAYER_TYPES)} (the layernorm types edit a norm's output, which TL does not hook)")
    site = SV_LAYER_TYPES[layer_type]
    _check_post_norm(model, site)
    n = _n_layers(model)
    vectors = {}
    for layer, v in acts.items():
        if not 0 <= int(layer) < n:
            raise SteeringError(f"steering vector for layer {layer}, but the model has {n} layers (0..{n - 1})")
        vectors[hook_name(int(layer), site)] = torch.as_tensor(v).detach().float().reshape(-1)
    return SteeringVectors(vectors, float(multiplier), "steering-vectors")


def to_steering_vectors(method: Any, model: TransformerBridge) -> Any:
    """tl_steer's fixed additive edit as a steering-vectors ``SteeringVector`` (strength baked in; apply with
    ``multiplier=1``). One layer type per vector: residual hooks, or attention outputs, or MLP outputs."""
    from steering_vectors import SteeringVector

    by_site: dict[Site, dict[int, torch.Tensor]] = {}
    for (layer, site), v in layer_output_shifts(static_edits(method, "all"), "steering-vectors").items():
        by_site.setdefault(site, {})[layer] = v
    names = {s: t for t, s in SV_LAYER_TYPES.items()}
    unsupported = [s for s in by_site if s not in names]
    if unsupported or len(by_site) != 1:
        raise SteeringError(
            f"a steering-vectors SteeringVector has one layer type; this method edits {sorted(s.value for s in by_site)} "
            "(supported: resid_pre / resid_post, attn_out, mlp_out; one of them)"
        )
    site, layers = next(iter(by_site.items()))
    _check_post_norm(model, site)
    return SteeringVector(layer_activations=dict(sorted(layers.items())), layer_type=names[site])


def from_repeng(cv: Any, model: TransformerBridge, coeff: float = 1.0) -> SteeringVectors:
    """A repeng ``ControlVector`` as ``SteeringVectors`` (``coeff`` becomes the strength; negative layer ids count
    from the end, as repeng's ControlModel counts them)."""
    directions = getattr(cv, "directions", None)
    if not isinstance(directions, dict):
        raise SteeringError(f"expected a repeng.ControlVector, got {type(cv).__name__}")
    n = _n_layers(model)
    vectors = {}
    for layer, v in directions.items():
        layer = int(layer) + (n if int(layer) < 0 else 0)
        if not 0 <= layer < n:
            raise SteeringError(f"control vector for layer {layer}, but the model has {n} layers")
        vectors[hook_name(layer, Site.RESID_POST)] = torch.as_tensor(v).detach().float().reshape(-1)
    return SteeringVectors(vectors, float(coeff), "repeng")


def to_repeng(method: Any, model: TransformerBridge) -> Any:
    """tl_steer's fixed residual-stream edit as a repeng ``ControlVector`` (strength baked in; ``coeff=1``)."""
    repeng = import_repeng()
    directions = {}
    for (layer, site), v in layer_output_shifts(static_edits(method, "all"), "repeng").items():
        if site is not Site.RESID_POST:
            raise SteeringError(f"repeng edits decoder-layer outputs (residual stream) only; this method edits {site.value}")
        directions[layer] = v.numpy()
    return repeng.ControlVector(model_type=model_type(model), directions=dict(sorted(directions.items())))


def import_repeng() -> Any:
    """``import repeng``. repeng 0.4.0 names ``np.float_`` in annotations, which numpy 2 removed; that one alias is
    restored (to ``np.float64``, what it was) with a warning, rather than failing the import."""
    import importlib
    import warnings

    import numpy as np

    if not hasattr(np, "float_"):
        warnings.warn("repeng needs numpy's removed alias np.float_; setting np.float_ = np.float64 for it",
                      stacklevel=2)
        np.float_ = np.float64  # type: ignore[attr-defined]
    return importlib.import_module("repeng")


__all__ = ["SV_LAYER_TYPES", "from_repeng", "from_steering_vectors", "import_repeng", "to_repeng",
           "to_steering_vectors"]
