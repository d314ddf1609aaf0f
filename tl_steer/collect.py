"""Collect activations: batched, left-padded, only the layers that are needed.

``collect(model, texts, ["blocks.12.hook_resid_pre"], read="last")`` runs ``run_with_cache`` with a
``names_filter`` and ``stop_at_layer`` (so blocks above the deepest requested hook never run), left-pads each batch
with an explicit attention mask, and returns CPU tensors that do not depend on the batch size or padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Bool
from torch import Tensor
from tqdm.auto import tqdm

from ._types import TransformerBridge
from .core import HookList, steer
from .errors import SteeringError, check_bos, check_int
from .sites import validate_hook_name

ReadSpec = Literal["last", "mean", "all"] | int  #: where activations are read (not where edits apply)


@dataclass(frozen=True)
class Collection:
    """Collected activations.

    ``acts[name]`` is ``(n, *feature)`` for ``read="last"``, ``"mean"`` or an int, and ``(n, pos, *feature)``
    (left-padded) for ``read="all"``, with ``mask`` ``(n, pos)`` marking real tokens.
    """

    acts: dict[str, Tensor]
    mask: Bool[Tensor, "n pos"] | None = None

    def __getitem__(self, name: str) -> Tensor:
        return self.acts[name]

    def __len__(self) -> int:
        return len(next(iter(self.acts.values()))) if self.acts else 0


def _layer(name: str) -> int | None:
    parts = name.split(".")
    if len(parts) > 1 and parts[0] == "blocks" and parts[1].isdigit():
        return int(parts[1])
    return None


def tokenizer_bos(tokenizer: Any) -> bool:
    """Whether a Hugging Face tokenizer puts a BOS token in front of a text (``tokenizer(text)`` with its special
    tokens): Gemma's does, SmolLM2's does not (its ``bos_token`` is the chat marker ``<|im_start|>``, which neither
    its tokenizer, the papers' reference code, lm-evaluation-harness nor steering-vectors put before plain text).

    Pass the model's *own* tokenizer: a ``TransformerBridge``'s ``model.tokenizer`` is TransformerLens' copy rebuilt
    with ``add_bos_token=True``, which always says yes. [`tl_steer.models.load()`][tl_steer.models.load] reads the
    rule from the original tokenizer and sets it as the bridge's ``cfg.default_prepend_bos``."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if tokenizer is None or bos is None:
        return False
    with_special = list(tokenizer("a")["input_ids"])
    plain = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    return bool(with_special) and with_special[0] == bos and plain[:1] != [bos]


def default_prepend_bos(model: TransformerBridge) -> bool:
    """The BOS rule used when ``prepend_bos`` is not given: the bridge's ``cfg.default_prepend_bos``, which
    [`tl_steer.models.load()`][tl_steer.models.load] sets to the model's own tokenizer's rule
    ([`tokenizer_bos()`][tl_steer.collect.tokenizer_bos]); a bridge booted by hand keeps TransformerLens' ``True``
    unless you set ``model.cfg.default_prepend_bos = tokenizer_bos(hf_tokenizer)``."""
    return bool(getattr(getattr(model, "cfg", None), "default_prepend_bos", True))


def tokenize_left(model: TransformerBridge, texts: Sequence[str], prepend_bos: bool | None = None) -> tuple[Tensor, Tensor]:
    """Left-padded tokens and their attention mask (1 = real token); ``prepend_bos=None``: the tokenizer's own rule."""
    from transformer_lens.utilities import get_attention_mask

    if prepend_bos is None:
        prepend_bos = default_prepend_bos(model)
    tokens = model.to_tokens(list(texts), prepend_bos=prepend_bos, padding_side="left")
    mask = get_attention_mask(model.tokenizer, tokens, prepend_bos, "left").to(tokens.device)
    return tokens, mask


def _compact(t: Tensor) -> Tensor:
    """``t`` in storage of its own size. ``act[:, -1]`` is a view that would keep the whole ``(batch, pos, ...)``
    activation alive until the end of ``collect``: with 4,000 texts at 30 hooks that held 15 GB."""
    if t.untyped_storage().nbytes() == t.numel() * t.element_size():
        return t
    return t.clone(memory_format=torch.contiguous_format)


def _select(act: Tensor, mask: Tensor, read: ReadSpec) -> Tensor:
    # act: (b, pos, *feature) left-padded; mask: (b, pos)
    if read == "all":
        return act
    if read == "last":
        return act[:, -1]
    if read == "mean":
        m = mask.to(act.dtype).reshape(mask.shape + (1,) * (act.ndim - 2))
        return (act * m).sum(1) / m.sum(1).clamp_min(1)
    if isinstance(read, int) and not isinstance(read, bool) and read < 0:
        lengths = mask.sum(1)
        if bool((lengths < -read).any()):
            raise SteeringError(f"read={read} reaches before the start of a text of {int(lengths.min())} tokens")
        return act[:, read]
    raise SteeringError(f"read must be 'last', 'mean', 'all' or a negative int (from the end), got {read!r}")


@torch.no_grad()
def collect(
    model: TransformerBridge,
    texts: Sequence[str],
    hook_names: Sequence[str] | str,
    read: ReadSpec = "last",
    batch_size: int = 8,
    prepend_bos: bool | None = None,
    hooks: HookList | None = None,
    progress: bool = True,
    dtype: torch.dtype | None = torch.float32,
) -> Collection:
    """Run ``texts`` through ``model`` and return the activations at ``hook_names`` (on CPU).

    Batched and left-padded; only the layers up to the deepest requested hook are run.

    Args:
        model: the ``TransformerBridge`` to read.
        texts: the texts, one activation row each.
        hook_names: TL hook names (``tl_steer.sites.hook_name(layer, site)`` builds them).
        read: where in each text: ``"last"`` token, ``"mean"`` over its tokens, a negative index from the end,
            or ``"all"`` tokens (left-padded, with a mask).
        batch_size: texts per forward.
        prepend_bos: put a BOS token before each text; default (``None``) the tokenizer's own rule
            as [`tl_steer.models.load()`][tl_steer.models.load] records it (``model.cfg.default_prepend_bos``; no BOS
            for SmolLM2, BOS for Gemma). ``True`` is TransformerLens' own rule.
        hooks: a TL hook list active while reading, e.g. to read a steered model.
        progress: show a progress bar.
        dtype: the returned dtype (``None`` keeps the model's).

    Returns:
        A [`Collection`][tl_steer.collect.Collection]: ``.acts[name]`` is ``(n_texts, *feature)`` (or
        ``(n_texts, pos, *feature)`` with ``read="all"``).
    """
    if isinstance(hook_names, str):
        hook_names = [hook_names]
    check_int(batch_size, "collect(): batch_size", 1)
    check_bos(prepend_bos, "collect(): prepend_bos")
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise SteeringError(f"collect(): dtype must be a floating torch dtype or None, got {dtype!r}")
    if not isinstance(hook_names, (list, tuple)) or not all(isinstance(n, str) for n in hook_names):
        raise SteeringError(f"collect(): hook_names must be a hook name or a list of them, got {hook_names!r}")
    if not hook_names:
        raise SteeringError("collect() needs at least one hook name")
    if isinstance(texts, str):
        raise SteeringError("collect() takes a list of texts, got a single string; wrap it in a list")
    if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        raise SteeringError(f"collect() takes a list of strings, got {type(texts).__name__}")
    if len(texts) == 0:
        raise SteeringError("collect() got no texts; pass a non-empty list of strings")
    if read not in ("last", "mean", "all") and not (isinstance(read, int) and not isinstance(read, bool) and read < 0):
        raise SteeringError(f"read must be 'last', 'mean', 'all' or a negative int (from the end), got {read!r}")
    for name in hook_names:
        validate_hook_name(model, name)
    layers = [_layer(n) for n in hook_names]
    stop = None if any(layer is None for layer in layers) else max(layers) + 1  # type: ignore[type-var]
    if stop is not None and stop >= model.cfg.n_layers:
        stop = None
    out: dict[str, list[Tensor]] = {n: [] for n in hook_names}
    masks: list[Tensor] = []
    batches = range(0, len(texts), batch_size)
    with steer(model, hooks or []):
        for start in tqdm(batches, desc="collect", disable=not progress, leave=False):
            chunk = list(texts[start : start + batch_size])
            tokens, mask = tokenize_left(model, chunk, prepend_bos)
            empty = (mask.sum(1) == 0).nonzero().flatten().tolist()
            if empty:
                raise SteeringError(
                    f"collect(): text {start + empty[0]} ({chunk[empty[0]]!r}) has no tokens (and no BOS); "
                    "drop empty texts or pass prepend_bos=True"
                )
            _, cache = model.run_with_cache(
                tokens, attention_mask=mask, names_filter=list(hook_names), stop_at_layer=stop,
                return_cache_object=False,
            )
            for n in hook_names:
                act = cache[n]
                sel = _select(act, mask, read)
                out[n].append(_compact(sel.to("cpu", dtype=dtype) if dtype is not None else sel.to("cpu")))
            masks.append(mask.to("cpu", dtype=torch.bool))
    if read == "all":
        width = max(m.shape[1] for m in masks)
        acts = {}
        for n in hook_names:
            padded = []
            for a in out[n]:
                pad = torch.zeros((a.shape[0], width - a.shape[1], *a.shape[2:]), dtype=a.dtype)
                padded.append(torch.cat([pad, a], 1))
            acts[n] = torch.cat(padded)
        mask_all = torch.cat([torch.cat([torch.zeros(m.shape[0], width - m.shape[1], dtype=torch.bool), m], 1) for m in masks])
        return Collection(acts, mask_all)
    return Collection({n: torch.cat(v) for n, v in out.items()}, None)
