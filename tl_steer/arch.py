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
lowers hooks with these tables, [`tl_steer.sites.hf_tensor()`][tl_steer.sites.hf_tensor] says where a TL hook is,
and [`tl_steer.fast.check_site_table()`][tl_steer.fast.check_site_table] checks each entry's tensor against the
bridge (the tests run it on every family, plus the same logits within 1e-4 and the same greedy tokens). Adding an
architecture is one entry here plus its tiny random config in
[`tl_steer.models.tiny_arch_configs()`][tl_steer.models.tiny_arch_configs]: two files, and the tests and the overhead
benchmark then cover it (docs/adding-an-architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import HookNameError, SteeringError

#: the TL sites (``tl_steer.sites.Site`` values; this module sits below ``sites``, which reads it)
RESID_PRE, RESID_MID, RESID_POST, ATTN_OUT, MLP_OUT, Z, MLP_POST = (
    "resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "z", "mlp_post")


@dataclass(frozen=True)
class HFTensor:
    """One TL site of one layer in the HF model: the input or output of the module at ``module`` (a dotted path
    from the causal LM)."""

    module: str
    io: Literal["input", "output"]  #: the module's (first) input or its (first) output
    heads: bool = False  #: seen by TL as ``(batch, pos, head, d_head)`` (the HF tensor is ``(batch, pos, d_model)``)
    flat: bool = False  #: the HF tensor is ``(batch * pos, feature)`` rows (OPT's MLP)
    layer: str = ""  #: the decoder layer that holds it (the flat rows' ``(batch, pos)`` come from its input)

    def __str__(self) -> str:
        view = ", viewed as (batch, pos, head, d_head)" if self.heads else ""
        view += ", (batch * pos, feature) rows" if self.flat else ""
        return f"{self.io} of {self.module}{view}"


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
    #: sites (``Site`` values) that are not one HF tensor in this family, with the reason
    unsupported: dict[str, str] = field(default_factory=dict)
    # What ``tl_steer.exporting`` needs to bake a fixed edit into the weights (docs/scaling.md):
    #: the config flag that gives the attention output projection a bias (``""``: it always has one; ``None``: the
    #: family's code hard-codes ``bias=False``, so no stock config can carry a bias there)
    attn_bias: str | None = None
    #: the same for the MLP's down projection
    mlp_bias: str | None = None
    #: the attention and MLP outputs are normalised before the residual add (Gemma 2/3): a bias of the projections
    #: does not reach the residual stream unnormalised
    post_norm: bool = False
    #: the token embeddings are multiplied by sqrt(hidden_size) before layer 0 (the Gemma family)
    embed_scaled: bool = False
    #: a module after the embeddings whose output is layer 0's input and whose bias adds there (BLOOM's
    #: ``word_embeddings_layernorm``); empty: the input embedding rows are layer 0's input
    embed_out: str = ""

    def locate(self, layer: int, site: str) -> HFTensor:
        """Where ``site`` of decoder layer ``layer`` is in the HF model (a ``HookNameError`` with the table's reason
        for a site that is not one HF tensor in this family)."""
        site = str(site)
        if site == RESID_MID:
            raise HookNameError(f"layer {layer} {site!r}: {_RESID_MID}; use the bridge for it")
        if site in self.unsupported:
            raise HookNameError(f"layer {layer} {site!r}: {self.unsupported[site]}; use the bridge for it")
        block = f"{self.layers}.{layer}"
        inside = {RESID_PRE: ("", "input"), RESID_POST: ("", "output"), Z: (self.attn_out_proj, "input"),
                  MLP_POST: (self.mlp_down_proj, "input"), ATTN_OUT: (self.attn_out, "output"),
                  MLP_OUT: (self.mlp_out, "output")}
        if site not in inside:
            raise HookNameError(f"unknown site {site!r}; expected one of {sorted(inside) + [RESID_MID]}")
        path, io = inside[site]
        return HFTensor(f"{block}.{path}" if path else block, io, heads=site == Z,  # type: ignore[arg-type]
                        flat=self.flat_mlp and site in (MLP_POST, MLP_OUT), layer=block)


_RESID_MID = "resid_mid is the sum after attention inside the layer's forward; no HF module returns it"
_LLAMA = ArchSites("model.layers", "self_attn.o_proj", "mlp.down_proj", "self_attn", "mlp",
                   attn_bias="attention_bias", mlp_bias="mlp_bias")
#: Mistral, Qwen2 and Phi-3 hard-code bias=False on both output projections
_NO_BIAS = ArchSites("model.layers", "self_attn.o_proj", "mlp.down_proj", "self_attn", "mlp")
#: Gemma 2 and 3 normalise the attention and MLP outputs before adding them (post-norms): TL's hook_attn_out and
#: hook_mlp_out are the normalised outputs
_POST_NORM = ArchSites("model.layers", "self_attn.o_proj", "mlp.down_proj", "post_attention_layernorm",
                       "post_feedforward_layernorm", attn_bias="attention_bias", post_norm=True, embed_scaled=True)
_BLOOM_ADDS = "BLOOM adds the residual inside its {} module, so its output is not TL's {}"

#: the site table of each architecture family, by Hugging Face ``config.model_type``
ARCH_SITES: dict[str, ArchSites] = {
    "llama": _LLAMA,
    "mistral": _NO_BIAS,
    "qwen2": _NO_BIAS,
    "qwen3": ArchSites("model.layers", "self_attn.o_proj", "mlp.down_proj", "self_attn", "mlp",
                       attn_bias="attention_bias"),
    "phi3": _NO_BIAS,
    "gemma": ArchSites("model.layers", "self_attn.o_proj", "mlp.down_proj", "self_attn", "mlp",
                       attn_bias="attention_bias", embed_scaled=True),
    "gemma2": _POST_NORM,
    "gemma3_text": _POST_NORM,
    "gpt2": ArchSites("transformer.h", "attn.c_proj", "mlp.c_proj", "attn", "mlp", attn_bias="", mlp_bias=""),
    "gpt_neox": ArchSites("gpt_neox.layers", "attention.dense", "mlp.dense_4h_to_h", "attention", "mlp",
                          attn_bias="attention_bias", mlp_bias=""),
    "opt": ArchSites("model.decoder.layers", "self_attn.out_proj", "fc2", "self_attn", "fc2",  # OPT has no MLP module
                     flat_mlp=True, attn_bias="enable_bias", mlp_bias="enable_bias"),
    "falcon": ArchSites("transformer.h", "self_attention.dense", "mlp.dense_4h_to_h", "self_attention", "mlp",
                        attn_bias="bias", mlp_bias="bias"),
    # GPT-J runs attention and MLP in parallel on one normalised input: there is no resid_mid in TL either
    "gptj": ArchSites("transformer.h", "attn.out_proj", "mlp.fc_out", "attn", "mlp", mlp_bias=""),
    "bloom": ArchSites("transformer.h", "self_attention.dense", "mlp.dense_4h_to_h", "self_attention", "mlp",
                       unsupported={ATTN_OUT: _BLOOM_ADDS.format("attention", "hook_attn_out"),
                                    MLP_OUT: _BLOOM_ADDS.format("MLP", "hook_mlp_out")},
                       attn_bias="", mlp_bias="", embed_out="transformer.word_embeddings_layernorm"),
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


def register_arch(model_type: str, table: ArchSites, *, replace: bool = False) -> ArchSites:
    """Add the site table of an architecture family (HF ``config.model_type``); a taken name is refused unless
    ``replace``. Check the entry with [`tl_steer.fast.check_site_table()`][tl_steer.fast.check_site_table]."""
    if not isinstance(table, ArchSites):
        raise SteeringError(f"register_arch({model_type!r}, ...) needs an ArchSites, got {type(table).__name__}")
    if model_type in ARCH_SITES and not replace:
        raise SteeringError(f"architecture {model_type!r} already has a site table; pass replace=True to change it")
    ARCH_SITES[model_type] = table
    return table

