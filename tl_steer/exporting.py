"""Steering outside the Python process: bake a fixed edit into a checkpoint any engine serves, or write it as a
llama.cpp control vector.

    ts.export(vec, bridge, "out/smollm2-caa")                        # a standard Hugging Face folder
    ts.export(vec, bridge, "out/caa.gguf", format="llama.cpp")      # llama-cli --control-vector out/caa.gguf

**What can be baked.** An edit that is the same affine map at every position and for every input,
``a' = scale ⊙ a + shift`` (the method's ``affine_edits()``, see [`AffineEdit`][tl_steer.protocol.AffineEdit]):

| edit at | becomes |
|---|---|
| shift at ``hook_z`` (ITI's per-head shifts) | attention output projection bias ``+= W_O · shift`` |
| shift at ``mlp.hook_post`` | MLP down projection bias ``+= W_down · shift`` |
| shift at ``hook_attn_out`` / ``hook_mlp_out`` | that projection's bias ``+= shift`` |
| shift at ``blocks.L.hook_resid_post`` = ``blocks.{L+1}.hook_resid_pre`` (CAA, ActAdd, PCA) | layer L's MLP down projection bias ``+= shift`` (it writes the residual stream last) |
| shift at ``blocks.0.hook_resid_pre`` | every input embedding row ``+= shift`` (÷ sqrt(d) where the family scales embeddings; the output embedding is untied first) |
| scale at ``hook_z`` / ``mlp.hook_post`` (SADI heads / neurons) | the projection's input columns ``*= scale`` |
| scale at ``hook_attn_out`` / ``hook_mlp_out`` | the projection's output rows and bias ``*= scale`` |

Where a family's code has no bias on that projection the architecture's site table says which config flag adds one
(``attention_bias`` / ``mlp_bias`` on Llama, ``enable_bias`` on OPT, ``bias`` on Falcon; [`tl_steer.arch.ArchSites`][tl_steer.arch.ArchSites]);
export sets it, and the biases it creates besides (Llama's q/k/v) are zero. Families that hard-code ``bias=False``
(Mistral, Qwen2, Phi-3; Qwen3 and the Gemmas in the MLP), the post-norm families' residual stream (Gemma 2/3
normalise each block's output before adding it) and a scale of the residual stream are refused with that reason.

**What cannot.** MAT-Steer (its gates depend on the input), SADI's reference mode, and any position scope other
than ``"all"`` (``last_prompt`` depends on where each prompt ends; weights see every position alike). Serve those
with [`tl_steer.fast.hf_steer`][tl_steer.fast.hf_steer] or the lm-eval plug-in ([`tl_steer.harness`][tl_steer.harness]).

**Checked, never trusted.** ``verify=True`` (default) loads the written folder back with plain
``AutoModelForCausalLM`` and compares its logits with the steered bridge on probe texts; above ``tolerance`` the
export is refused and nothing is left at ``path``. The folder gets ``tl_steer_export.json`` (method, hooks, what each
became, the config flags set, the measured difference); plain ``transformers`` ignores it. An existing ``path`` is
replaced only with ``overwrite=True`` and only if it is an earlier export (it has that file).

**llama.cpp.** ``format="llama.cpp"`` writes the control-vector GGUF llama.cpp reads with ``--control-vector``
(architecture ``controlvector``, one F32 ``direction.N`` per layer). llama.cpp adds ``direction.N`` to the output of
layer ``N`` (0-based) for ``N = 1 .. n_layers - 1`` (``common_control_vector_load`` stores it at ``N - 1``; the graph
adds ``tensors[il]`` after layer ``il``; there is never one for layer 0): TL's ``blocks.N.hook_resid_post`` =
``blocks.{N+1}.hook_resid_pre``. The strength is baked into the vector (``--control-vector-scaled F S`` scales it
again). [`read_control_vector()`][tl_steer.exporting.read_control_vector] reads one back.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import registry
from ._types import TransformerBridge
from ._version import __version__
from .arch import ArchSites, arch_sites, submodule
from .core import Positions, parse_position_set, steer
from .errors import ScopeError, SteeringError
from .protocol import AffineEdit
from .sites import Site, hook_name, site_of

FORMATS = ("hf", "llama.cpp")
MANIFEST = "tl_steer_export.json"
PROBES = ("The quick brown fox jumps over the lazy dog.",
          "Steering adds a vector to the residual stream of a language model at every token.")


def static_edits(method: Any, positions: Any = None, strength: float | None = None) -> dict[str, AffineEdit]:
    """``{hook: AffineEdit}`` of ``method`` at ``positions`` (default: the method's registered scope), refused with
    the reason when the edit is not the same at every position and for every input."""
    name = getattr(method, "method", type(method).__name__)
    if positions is None:
        positions = registry.default_positions(method)
        if parse_position_set(positions) != (Positions.ALL,):
            raise ScopeError(
                f"{name} edits {positions!r} by default (its paper's scope), which depends on where each prompt ends; "
                "a checkpoint's weights see every position alike. Pass positions='all' to export the every-position "
                "edit, or serve the scoped one with tl_steer.fast.hf_steer or the lm-eval plug-in"
            )
    scope = set(parse_position_set(positions))
    if scope != {Positions.ALL} and scope != {Positions.PROMPT, Positions.GENERATED}:
        raise ScopeError(
            f"export bakes an edit into every position; positions={positions!r} edits only some of them (they depend "
            "on where each prompt ends, which weights cannot see). Use positions='all', or serve the scoped edit with "
            "tl_steer.fast.hf_steer or the lm-eval plug-in"
        )
    edits = getattr(method, "affine_edits", None)
    if edits is None:
        raise SteeringError(
            f"{type(method).__name__} ({name}) does not declare its edit as a fixed affine map (no affine_edits()), "
            "so it cannot be baked into weights; serve it with tl_steer.fast.hf_steer"
        )
    return edits(strength)


# ---------------------------------------------------------------------------------------------------------------
# Hugging Face checkpoints


def _in_out(module: Any) -> str:
    """``"linear"`` (weight ``(out, in)``) or ``"conv1d"`` (GPT-2's ``Conv1D``, weight ``(in, out)``)."""
    if isinstance(module, torch.nn.Linear):
        return "linear"
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf"):
        return "conv1d"
    raise SteeringError(f"export: {type(module).__name__} is not a linear projection; its site table does not fit")


@dataclass
class _Plan:
    """What to do to a copy of the HF model: bias flags to set, whether to untie, and one step per hook."""

    table: ArchSites
    model_type: str
    flags: dict[str, bool] = field(default_factory=dict)
    untie: bool = False
    steps: list[tuple[str, str, str, torch.Tensor]] = field(default_factory=list)  # (hook, module, action, tensor)
    where: dict[str, list[str]] = field(default_factory=dict)
    width: int = 0  #: hidden size (the Gemma embedding scale)

    def refuse(self, hook: str, why: str) -> SteeringError:
        return SteeringError(f"cannot export {hook!r} to a {self.model_type!r} checkpoint: {why}; serve it with "
                             "tl_steer.fast.hf_steer" + ("" if "resid" not in hook else
                                                         ", or as a llama.cpp control vector (format='llama.cpp')"))

    def need_bias(self, hook: str, which: str) -> None:
        flag = self.table.attn_bias if which == "attn" else self.table.mlp_bias
        proj = self.table.attn_out_proj if which == "attn" else self.table.mlp_down_proj
        if flag is None:
            raise self.refuse(hook, f"its {proj} has no bias in any stock config (transformers hard-codes bias=False)")
        if flag:
            self.flags[flag] = True

    def add(self, hook: str, module: str, action: str, tensor: torch.Tensor) -> None:
        self.steps.append((hook, module, action, tensor))
        self.where.setdefault(hook, []).append(f"{action} {module}")

    def lower(self, hook: str, edit: AffineEdit) -> None:
        layer, site = site_of(hook)
        t = self.table
        proj = {Site.Z: ("attn", t.attn_out_proj), Site.MLP_POST: ("mlp", t.mlp_down_proj),
                Site.ATTN_OUT: ("attn", t.attn_out_proj), Site.MLP_OUT: ("mlp", t.mlp_down_proj)}
        if site in (Site.Z, Site.MLP_POST):  # the projection's input
            t.locate(layer, site.value)  # the table's own refusal, if any
            which, path = proj[site]
            module = f"{t.layers}.{layer}.{path}"
            if edit.shift is not None:  # W (scale * a + shift) + b: the shift goes through the unscaled W, first
                self.need_bias(hook, which)
                self.add(hook, module, "bias += W @", edit.shift.reshape(-1))
            if edit.scale is not None:
                self.add(hook, module, "input columns *=", edit.scale.reshape(-1))
            return
        if site in (Site.ATTN_OUT, Site.MLP_OUT):  # the projection's output
            t.locate(layer, site.value)
            if t.post_norm:
                raise self.refuse(hook, "this family normalises the block's output after the projection, so TL's "
                                        f"{site.value} is the norm's output, which has no bias")
            which, path = proj[site]
            module = f"{t.layers}.{layer}.{path}"
            if edit.scale is not None:
                self.add(hook, module, "output rows *=", edit.scale.reshape(-1))
            if edit.shift is not None:
                self.need_bias(hook, which)
                self.add(hook, module, "bias +=", edit.shift.reshape(-1))
            return
        if site not in (Site.RESID_PRE, Site.RESID_POST):
            t.locate(layer, site.value)  # resid_mid: the table's reason
            raise self.refuse(hook, f"site {site.value} is not exportable")
        if edit.scale is not None:
            raise self.refuse(hook, "a scale of the residual stream rescales what every earlier layer wrote; it is not "
                                    "a change of one module")
        if edit.shift is None:
            return
        writer = layer - 1 if site is Site.RESID_PRE else layer
        if writer < 0:  # layer 0's input: the embeddings
            if t.embed_out:
                self.add(hook, t.embed_out, "bias +=", edit.shift.reshape(-1))
                return
            scale = 1.0 / math.sqrt(self.width) if t.embed_scaled else 1.0
            self.untie = True
            self.add(hook, "<input embeddings>", "rows +=", edit.shift.reshape(-1) * scale)
            return
        if t.post_norm:
            raise self.refuse(hook, "this family normalises each block's output before adding it to the residual "
                                    "stream (post-norms without a bias), so no bias adds a vector to the stream")
        self.need_bias(hook, "mlp")
        self.add(hook, f"{t.layers}.{writer}.{t.mlp_down_proj}", "bias +=", edit.shift.reshape(-1))


@torch.no_grad()
def _apply(plan: _Plan, hf: Any) -> None:
    """Carry out ``plan`` on ``hf`` (a copy of the user's model): create the flagged biases as zeros, untie, edit."""
    cfg = hf.config
    for flag in plan.flags:
        setattr(cfg, flag, True)
    if plan.untie and getattr(cfg, "tie_word_embeddings", False):
        out = hf.get_output_embeddings()
        out.weight = torch.nn.Parameter(hf.get_input_embeddings().weight.detach().clone())
        cfg.tie_word_embeddings = False
    with torch.device("meta"):
        reference = type(hf)(cfg)  # the parameters a stock model with these flags has
    have = dict(hf.named_parameters(remove_duplicate=False))
    for key, p in reference.named_parameters(remove_duplicate=False):
        if key in have:
            continue
        if not key.endswith(".bias"):
            raise SteeringError(f"export: setting {sorted(plan.flags)} on {plan.model_type!r} adds {key!r}, which is not "
                                "a bias; refusing to guess its value")
        owner = submodule(hf, key[: -len(".bias")])
        w = owner.weight
        owner.bias = torch.nn.Parameter(torch.zeros(p.shape, dtype=w.dtype, device=w.device))
    for hook, path, action, t in plan.steps:
        if path == "<input embeddings>":
            emb = hf.get_input_embeddings().weight
            _check_len(hook, path, t, emb.shape[1])
            emb += t.to(emb)
            continue
        m = submodule(hf, path)
        if action == "bias +=":
            _check_len(hook, path, t, m.bias.shape[0])
            m.bias += t.to(m.bias)
            continue
        kind = _in_out(m)
        w = m.weight
        n_in, n_out = (w.shape[1], w.shape[0]) if kind == "linear" else (w.shape[0], w.shape[1])
        _check_len(hook, path, t, n_out if action == "output rows *=" else n_in)
        if action == "bias += W @":  # the projection of the shift, whatever the module's layout
            x = t.to(w).reshape(1, -1)
            m.bias += (m(x) - m(torch.zeros_like(x))).reshape(-1)
        elif action == "input columns *=":
            s = t.to(w)
            w *= s if kind == "linear" else s[:, None]
        elif action == "output rows *=":
            s = t.to(w)
            w *= s[:, None] if kind == "linear" else s
            if m.bias is not None:
                m.bias *= s
        else:  # pragma: no cover - every action above is produced by _Plan.lower
            raise AssertionError(action)


def _check_len(hook: str, path: str, t: torch.Tensor, want: int) -> None:
    if t.numel() != want:
        raise SteeringError(f"export: the edit at {hook!r} has {t.numel()} values but {path} takes {want}; the method "
                            "was fitted on another model (or a different width): fit it on this model")


def _plan(hf: Any, edits: dict[str, AffineEdit]) -> _Plan:
    cfg = hf.config
    plan = _Plan(arch_sites(hf), str(cfg.model_type), width=int(cfg.hidden_size))
    for hook, edit in edits.items():
        plan.lower(hook, edit)
    return plan


def _check_target(path: Path, overwrite: bool, what: str) -> None:
    if not path.exists():
        return
    if path.is_dir() and not any(path.iterdir()):
        return
    if not overwrite:
        raise SteeringError(f"{path} already exists; pass overwrite=True to replace an earlier export, or pick another "
                            "path")
    ours = (path / MANIFEST).is_file() if path.is_dir() else _is_control_vector(path)
    if not ours:
        mark = MANIFEST if path.is_dir() else "architecture 'controlvector'"
        raise SteeringError(f"{path} exists and is not {what} written by tl_steer (no {mark}); it is left alone: "
                            "pick another path")


def _is_control_vector(path: Path) -> bool:
    """Whether ``path`` is a control-vector GGUF (what ``format="llama.cpp"`` writes), not a model or other file."""
    import gguf

    try:
        field = gguf.GGUFReader(str(path)).get_field("general.architecture")
    except Exception:  # noqa: BLE001 - not a readable GGUF at all: not ours
        return False
    return field is not None and field.contents() == "controlvector"


def model_type(model: TransformerBridge) -> str:
    """The Hugging Face ``model_type`` of the bridge's model (``"unknown"`` for a TL-native one)."""
    cfg = getattr(getattr(model, "original_model", None), "config", None)
    return str(getattr(cfg, "model_type", "") or "unknown")


def layer_output_shifts(edits: dict[str, AffineEdit], what: str) -> dict[tuple[int, Site], torch.Tensor]:
    """``{(layer, site): shift}`` of [`static_edits()`][tl_steer.exporting.static_edits], a residual hook as the output
    of the layer that writes it (``resid_pre L`` is ``(L - 1, resid_post)``; shifts at one place summed): the
    layer-output convention of llama.cpp, steering-vectors and repeng. ``what`` names the target in the errors."""
    out: dict[tuple[int, Site], torch.Tensor] = {}
    for name, edit in edits.items():
        layer, site = site_of(name)
        if edit.scale is not None:
            raise SteeringError(f"{name!r}: {what} adds vectors; a scale (SADI) has no form there")
        if site is Site.RESID_PRE:
            layer, site = layer - 1, Site.RESID_POST
            if layer < 0:
                raise SteeringError(f"{name!r} is the embeddings' output; {what} edits decoder-layer outputs only")
        if edit.shift is None:
            continue
        key = (layer, site)
        out[key] = out.get(key, 0) + edit.shift.detach().float().cpu()
    return out


def _put(tmp: Path, path: Path) -> None:
    """Move the finished ``tmp`` to ``path``; an earlier export there is removed only once the new one is complete."""
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old) if old.is_dir() else old.unlink()


@torch.no_grad()
def max_logit_diff(model: TransformerBridge, method: Any, hf: Any, tokenizer: Any, strength: float | None = None,
                   texts: tuple[str, ...] = PROBES) -> float:
    """The largest absolute logit difference between the bridge steered at every position and ``hf`` (unsteered:
    an exported checkpoint), over ``texts`` (each on its own, the tokenizer's own BOS rule)."""
    hooks = method.hooks(model, positions=Positions.ALL, strength=strength)
    worst = 0.0
    for text in texts:
        ids = tokenizer(text, return_tensors="pt").input_ids
        with steer(model, hooks):
            ref = model(ids.to(model.cfg.device)).float().cpu()
        got = hf(input_ids=ids.to(next(hf.parameters()).device)).logits.float().cpu()
        worst = max(worst, float((ref - got).abs().max()))
    return worst


def export_hf(method: Any, model: TransformerBridge, path: str | Path, *, hf_model: Any = None, tokenizer: Any = None,
              positions: Any = None, strength: float | None = None, verify: bool = True, tolerance: float = 1e-3,
              overwrite: bool = False) -> Path:
    """``format="hf"`` of [`export()`][tl_steer.exporting.export]: see the module docstring."""
    from transformers import AutoModelForCausalLM

    if hf_model is None:
        from .models import hf_twin

        hf_model, own_tok = hf_twin(model)  # a ModelError saying to pass hf_model= when the source is unknown
        tokenizer = tokenizer if tokenizer is not None else own_tok
    if not hasattr(hf_model, "config"):
        raise SteeringError(
            f"export(format='hf'): hf_model must be a Hugging Face causal LM (with .config), got {type(hf_model).__name__}"
        )
    path = Path(path)
    _check_target(path, overwrite, "a checkpoint")
    edits = static_edits(method, positions, strength)
    plan = _plan(hf_model, edits)
    tokenizer = tokenizer if tokenizer is not None else model.tokenizer
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        baked = copy.deepcopy(hf_model)
        _apply(plan, baked)
        baked.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        del baked
        diff = None
        if verify:
            loaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=next(hf_model.parameters()).dtype).eval()
            diff = max_logit_diff(model, method, loaded, tokenizer, strength)
            del loaded
            if not diff <= tolerance:
                raise SteeringError(
                    f"the exported {plan.model_type!r} checkpoint differs from the steered bridge by {diff:.3g} in the "
                    f"logits (tolerance {tolerance:g}); nothing was written to {path}. Its site table's export fields "
                    "(tl_steer.arch.ArchSites) may not fit this model's config: serve the method with hf_steer"
                )
        (tmp / MANIFEST).write_text(json.dumps({
            "format": "hf", "tl_steer": __version__, "method": getattr(method, "method", type(method).__name__),
            "strength": float(method.strength if strength is None else strength), "positions": "all",
            "model_type": plan.model_type, "hooks": plan.where, "config_flags": sorted(plan.flags),
            "untied_embeddings": plan.untie and bool(plan.steps), "max_logit_diff": diff,
        }, indent=1))
        _put(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


# ---------------------------------------------------------------------------------------------------------------
# llama.cpp control vectors


def control_vector_layer(hook: str, n_layers: int) -> int:
    """The llama.cpp ``direction.N`` index of a residual hook (``blocks.N.hook_resid_post`` =
    ``blocks.{N+1}.hook_resid_pre``), or a ``SteeringError`` for hooks llama.cpp cannot steer."""
    layer, site = site_of(hook)
    n = layer if site is Site.RESID_POST else layer - 1 if site is Site.RESID_PRE else None
    if n is None or not 1 <= n <= n_layers - 1:
        raise SteeringError(
            f"llama.cpp adds control vectors to the outputs of layers 1..{n_layers - 1} only (direction.N = TL "
            f"blocks.N.hook_resid_post = blocks.{{N+1}}.hook_resid_pre; never layer 0's output or a head or MLP "
            f"site); {hook!r} is not one of them: steer blocks.2.hook_resid_pre .. blocks.{n_layers - 1}.hook_resid_post, "
            "or export format='hf'"
        )
    return n


def export_control_vector(method: Any, model: TransformerBridge, path: str | Path, *, positions: Any = None,
                          strength: float | None = None, overwrite: bool = False) -> Path:
    """``format="llama.cpp"`` of [`export()`][tl_steer.exporting.export]: see the module docstring."""
    import gguf
    import numpy as np

    path = Path(path)
    if path.suffix != ".gguf":
        raise SteeringError(f"a llama.cpp control vector is a .gguf file; got {path}")
    _check_target(path, overwrite, "a control vector")
    n_layers = int(model.cfg.n_layers)
    directions: dict[int, torch.Tensor] = {}
    shifts = layer_output_shifts(static_edits(method, positions, strength), "a llama.cpp control vector")
    for (layer, site), v in shifts.items():
        hook = hook_name(layer, site)
        n = control_vector_layer(hook, n_layers)
        if v.ndim != 1:
            raise SteeringError(f"{hook!r}: a control vector is one d_model vector, got shape {tuple(v.shape)}")
        directions[n] = v
    if not directions:
        raise SteeringError("nothing to export: the method adds no vector")
    hint = model_type(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        writer = gguf.GGUFWriter(str(tmp), "controlvector")
        writer.add_string("controlvector.model_hint", hint)
        writer.add_uint32("controlvector.layer_count", len(directions))
        for n in sorted(directions):
            writer.add_tensor(f"direction.{n}", directions[n].numpy().astype(np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        _put(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_control_vector(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``({hook: vector}, metadata)`` of a llama.cpp control-vector GGUF (``direction.N`` -> ``blocks.N.hook_resid_post``)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    meta: dict[str, Any] = {}
    for key in ("general.architecture", "controlvector.model_hint", "controlvector.layer_count"):
        f = reader.get_field(key)
        if f is not None:
            meta[key] = f.contents()
    if meta.get("general.architecture") != "controlvector":
        raise SteeringError(f"{path} is not a control vector (architecture {meta.get('general.architecture')!r})")
    vectors = {}
    for t in reader.tensors:
        kind, _, n = t.name.partition(".")
        if kind != "direction" or not n.isdigit() or int(n) < 1:
            raise SteeringError(f"{path}: tensor {t.name!r} is not direction.N with N >= 1")
        vectors[f"blocks.{int(n)}.hook_resid_post"] = torch.from_numpy(t.data.copy()).float()
    return vectors, meta


def export(method: Any, model: TransformerBridge, path: str | Path, format: str = "hf", **kwargs: Any) -> Path:  # noqa: A002
    """Write ``method``'s fixed edit where another engine can use it.

    Args:
        method: a fitted method with ``affine_edits()`` (CAA, ActAdd, PCA, ITI; SADI live mode with
            ``positions="all"``); MAT-Steer is refused with the reason.
        model: the ``TransformerBridge`` the method was fitted on (it checks the export).
        path: a folder (``"hf"``) or a ``.gguf`` file (``"llama.cpp"``); an earlier export there is replaced only
            with ``overwrite=True``, anything else never.
        format: ``"hf"`` (a Hugging Face checkpoint plain ``transformers``, vLLM, TGI or SGLang load) or
            ``"llama.cpp"`` (a control vector for ``--control-vector``).
        **kwargs: ``positions`` (default: the method's scope; only ``"all"`` exports), ``strength``, ``overwrite``;
            for ``"hf"`` also ``hf_model`` (required: the plain HF model with the bridge's weights), ``tokenizer``,
            ``verify`` (default True), ``tolerance`` (default 1e-3). Without ``hf_model`` a bridge that
            [`tl_steer.models.load()`][tl_steer.models.load] booted from a registered name, ``.gguf`` or folder is
            reloaded as plain HF ([`hf_twin()`][tl_steer.models.hf_twin]); other bridges need it.

    Returns:
        ``path``.
    """
    if format == "hf":
        return export_hf(method, model, path, **kwargs)
    if format in ("llama.cpp", "gguf"):
        return export_control_vector(method, model, path, **kwargs)
    raise SteeringError(f"unknown export format {format!r}; expected one of {list(FORMATS)}")


__all__ = ["FORMATS", "MANIFEST", "control_vector_layer", "export", "export_control_vector", "export_hf",
           "layer_output_shifts", "max_logit_diff", "model_type", "read_control_vector", "static_edits"]
