"""Per-architecture site tables: where each TransformerLens site lives in the Hugging Face model.

One [`ArchSites`][tl_steer.arch.ArchSites] per architecture family (keyed by the HF ``config.model_type``) names the
decoder-layer list and, inside a layer, the modules whose input or output *is* the TL tensor:

| TL site | HF tensor |
|---|---|
| ``resid_pre`` | the decoder layer's input ``hidden_states`` |
| ``resid_post`` | the decoder layer's output (first element) |
| ``z`` | the input of the attention output projection (``o_proj`` / ``c_proj`` / ``dense`` / ``out_proj``), viewed as ``(batch, pos, head, d_head)`` |
| ``mlp_post`` | the input of the MLP's down projection (``down_proj`` / ``c_proj`` / ``dense_4h_to_h`` / ``fc2``) |
| ``attn_out`` | the attention module's output (first element) |
| ``mlp_out`` | the MLP module's output |

A site missing from a table is not one HF tensor in that family, and the table says why (BLOOM adds the residual
inside its attention and MLP modules; ``resid_mid`` is a sum that no HF module returns). [`tl_steer.fast.hf_steer`][tl_steer.fast.hf_steer]
lowers hooks with these tables, and the tests check every entry against the bridge (same logits within 1e-4, same
greedy tokens). Adding an architecture is one entry here plus its tiny random config in
[`tl_steer.models.tiny_arch_configs()`][tl_steer.models.tiny_arch_configs]: two files, and the tests and the overhead
benchmark then cover it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import HookNameError, SteeringError
from .sites import Site


@dataclass(frozen=True)
class ArchSites:
    """Where the TL sites are in one architecture family's HF model (dotted module paths)."""

    layers: str  #: the decoder-layer list, from the causal-LM model (e.g. ``model.layers``)
    attn_out_proj: str  #: the attention output projection, inside a layer (its input is ``hook_z``)
    mlp_down_proj: str  #: the MLP's down projection, inside a layer (its input is ``mlp.hook_post``)
    attn_out: str  #: the module, inside a layer, whose output is ``hook_attn_out``
    mlp_out: str  #: the module, inside a layer, whose output is ``hook_mlp_out``
    #: the MLP runs on ``(batch * pos, feature)`` rows (OPT flattens them): hooks see them as ``(batch, pos, feature)``
    flat_mlp: bool = False
    #: sites that are not one HF tensor in this family, with the reason
    unsupported: dict[Site, str] = field(default_factory=dict)


_RESID_MID = "resid_mid is the sum after attention inside the layer's forward; no HF module returns it"
_LLAMA = ArchSites("model.layers", "self_attn.o_proj", "mlp.down_proj", "self_attn", "mlp")
#: Gemma 2 and 3 normalise the attention and MLP outputs before adding them (post-norms): TL's hook_attn_out and
#: hook_mlp_out are the normalised outputs
_POST_NORM = ArchSites("model.layers", "self_attn.o_proj", "mlp.down_proj", "post_attention_layernorm",
                       "post_feedforward_layernorm")
_BLOOM_ADDS = "BLOOM adds the residual inside its {} module, so its output is not TL's {}"

#: the site table of each architecture family, by Hugging Face ``config.model_type``
ARCH_SITES: dict[str, ArchSites] = {
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
    "phi3": _LLAMA,
    "gemma": _LLAMA,
    "gemma2": _POST_NORM,
    "gemma3_text": _POST_NORM,
    "gpt2": ArchSites("transformer.h", "attn.c_proj", "mlp.c_proj", "attn", "mlp"),
    "gpt_neox": ArchSites("gpt_neox.layers", "attention.dense", "mlp.dense_4h_to_h", "attention", "mlp"),
    "opt": ArchSites("model.decoder.layers", "self_attn.out_proj", "fc2", "self_attn", "fc2",  # OPT has no MLP module
                     flat_mlp=True),
    "falcon": ArchSites("transformer.h", "self_attention.dense", "mlp.dense_4h_to_h", "self_attention", "mlp"),
    "bloom": ArchSites("transformer.h", "self_attention.dense", "mlp.dense_4h_to_h", "self_attention", "mlp",
                       unsupported={Site.ATTN_OUT: _BLOOM_ADDS.format("attention", "hook_attn_out"),
                                    Site.MLP_OUT: _BLOOM_ADDS.format("MLP", "hook_mlp_out")}),
}
"""The site table of each architecture family, by Hugging Face ``config.model_type``."""


def arch_sites(hf_model: Any) -> ArchSites:
    """The site table of ``hf_model``'s architecture (a clear error naming the supported families otherwise)."""
    model_type = getattr(getattr(hf_model, "config", None), "model_type", None)
    if model_type not in ARCH_SITES:
        raise SteeringError(
            f"no site table for architecture {model_type!r} ({type(hf_model).__name__}); tables exist for "
            f"{sorted(ARCH_SITES)} (tl_steer.arch.ARCH_SITES): add one, or steer through the bridge"
        )
    return ARCH_SITES[model_type]


def submodule(root: Any, path: str) -> Any:
    """``root.a.b.c`` for ``path="a.b.c"``, with an error naming the missing part."""
    mod = root
    for part in path.split("."):
        if not hasattr(mod, part):
            raise SteeringError(f"{type(root).__name__} has no {path!r} (missing {part!r}); its site table does not fit")
        mod = getattr(mod, part)
    return mod


def check_site(table: ArchSites, site: Site, name: str) -> None:
    """Refuse a site that is not one HF tensor in this family, with the table's reason."""
    if site is Site.RESID_MID:
        raise HookNameError(f"{name!r}: {_RESID_MID}; use the bridge for it")
    if site in table.unsupported:
        raise HookNameError(f"{name!r}: {table.unsupported[site]}; use the bridge for it")
