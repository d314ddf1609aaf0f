"""The hook contract, position scoping and the ``steer`` context manager.

A steering hook is any callable ``fn(activation, hook) -> Tensor`` (TransformerLens' ``HookPoint`` contract: the
second parameter is passed by keyword and must be named ``hook``). tl_steer's hooks are *pure*: they return a new
tensor, never edit ``activation`` in place (TL caches share memory with it), and keep its dtype and device.

Placement is data: methods return TL's own hook list ``[(hook_name, fn), ...]``, which goes straight into
``model.run_with_hooks(x, fwd_hooks=...)``, ``with model.hooks(fwd_hooks=...)``, ``run_with_cache`` or
[`steer()`][tl_steer.core.steer].

**Position scopes.** A hook only sees ``(batch, pos, ...)``. Which of those positions are prompt tokens, generated
tokens, padding, or the last prompt token depends on the forward pass: with the KV cache every decode step sees
``pos == 1``; without it every step recomputes the whole sequence; left padding shifts the prompt. A
[`PositionTracker`][tl_steer.core.PositionTracker] (a passive ``torch`` forward pre-hook on ``model.original_model``, not a TL hook) records, per
forward, how many tokens are already cached, the attention mask, and the prompt length of the current generation, so
that a scoped hook edits exactly the same tokens whether the batch is padded or not and whether the KV cache is on
or off. The rules:

* A forward that receives a KV cache that the previous forward produced continues that generation.
* A forward whose attention mask is longer than its input continues a generation (``past = mask_len - pos``).
* Inside ``model.generate`` / ``hf_generate``, a forward without cache whose tokens extend the previous forward's
  tokens by exactly one token is the next step of an uncached generation (``use_past_kv_cache=False``). Outside
  them the same input is an independent new prompt: two calls ``model("a")``, ``model("aa")`` are not a generation.
* Anything else starts a new prompt: its length is the prompt length.

While tracking is on ([`tracking()`][tl_steer.core.tracking], [`steer()`][tl_steer.core.steer]), the bridge's ``forward``, ``generate`` and ``hf_generate``
are wrapped on the instance (removed on exit): the forward wrapper records each row's real length when TL pads a
list of strings on the right, which it does without an attention mask.

Teacher-forced scoring feeds the prompt *and* the answer in one forward; inside
``with tracker.prompt_length(n):`` every forward is taken as a new prompt whose first ``n`` (padded) positions are
the prompt, so ``last_prompt`` edits the last prompt token and ``generated`` the answer tokens, as in generation.

Padding positions (attention mask 0) are never edited.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import torch
from jaxtyping import Bool
from torch import Tensor

from ._types import TransformerBridge
from .errors import ScopeError, SteeringError
from .sites import validate_hook_name

HookFn = Callable[..., Tensor | None]
HookList = list[tuple[str, HookFn]]


class Positions(StrEnum):
    """Which token positions a hook edits."""

    ALL = "all"  #: every real (non-padding) token, prompt and generated
    PROMPT = "prompt"  #: prompt tokens only
    GENERATED = "generated"  #: generated tokens only (as they are fed back in)
    LAST_PROMPT = "last_prompt"  #: the last real prompt token of each row
    #: the last real token of each forward call (the MAT-Steer and ITI reference interveners' ``b[0, -1]``): the last
    #: prompt token in a prefill, each new token with the KV cache, only the newest token of an uncached step, and
    #: only the final token of a teacher-forced sequence (so it cannot change log-likelihood scores)
    LAST = "last"


def parse_positions(positions: Positions | str) -> Positions:
    """One position scope from a [`Positions`][tl_steer.core.Positions] or its name (``"last_prompt"``)."""
    try:
        return Positions(positions)
    except ValueError:
        raise ScopeError(
            f"unknown position scope {positions!r}; expected one of {[p.value for p in Positions]}"
        ) from None


PositionSpec = Positions | str | Sequence[Positions | str]


def parse_position_set(positions: PositionSpec) -> tuple[Positions, ...]:
    """``"last_prompt"``, ``Positions.ALL``, ``"last_prompt+generated"`` or ``("last_prompt", "generated")``.

    A union collapses to ``(Positions.ALL,)`` when it contains ``ALL``; duplicates are dropped, order kept.
    """
    if isinstance(positions, Positions):
        return (positions,)
    if isinstance(positions, str):
        parts = [p.strip() for p in positions.split("+")]
    elif isinstance(positions, Sequence):
        parts = list(positions)
    else:
        raise ScopeError(f"positions must be a Positions, a string or a sequence of them, got {positions!r}")
    if not parts or any(p == "" for p in parts):
        raise ScopeError(f"empty position scope in {positions!r}; expected e.g. 'last_prompt+generated'")
    out: list[Positions] = []
    for p in parts:
        q = parse_positions(p)
        if q not in out:
            out.append(q)
    return (Positions.ALL,) if Positions.ALL in out else tuple(out)


@dataclass
class ForwardInfo:
    """What the tracker knows about the forward pass in flight."""

    batch: int
    n_new: int  #: tokens in this forward (the activations' pos axis)
    past: int  #: tokens already in the KV cache
    prompt_len: int  #: length of the (padded) prompt of the current generation
    mask: Bool[Tensor, "batch n_new"]  #: real (non-padding) tokens among the new ones
    last_prompt: Tensor  #: (batch,) absolute index of each row's last real prompt token

    #: False when the sequence's final token is not fed (teacher-forced scoring of ``context + answer[:-1]``): then
    #: the last position of the full sequence is not in this forward and ``last`` edits nothing
    last_fed: bool = True
    _keep: dict[tuple[tuple[Positions, ...], torch.device], Tensor] = field(default_factory=dict, repr=False)

    def positions(self, device: torch.device) -> Tensor:
        """Absolute positions of this forward's tokens: ``past .. past + n_new - 1``."""
        return torch.arange(self.past, self.past + self.n_new, device=device)

    def keep(self, scopes: tuple[Positions, ...], device: torch.device) -> Bool[Tensor, "batch n_new"]:
        """Union of [`tl_steer.core.ForwardInfo.select()`][tl_steer.core.ForwardInfo.select] over ``scopes``, computed once per forward and device."""
        key = (scopes, torch.device(device))
        out = self._keep.get(key)
        if out is None:
            out = self.select(scopes[0], device)
            for p in scopes[1:]:
                out = out | self.select(p, device)
            self._keep[key] = out
        return out

    def select(self, scope: Positions, device: torch.device) -> Bool[Tensor, "batch n_new"]:
        """Which of this forward's ``(batch, n_new)`` tokens belong to one position scope (padding never does)."""
        pos = self.positions(device)[None, :]
        mask = self.mask.to(device)
        if scope is Positions.ALL:
            return mask
        if scope is Positions.PROMPT:
            return mask & (pos < self.prompt_len)
        if scope is Positions.GENERATED:
            return mask & (pos >= self.prompt_len)
        if scope is Positions.LAST:
            if not self.last_fed:
                return torch.zeros_like(mask)
            idx = torch.arange(self.n_new, device=device).expand_as(mask)
            last = torch.where(mask, idx, torch.full_like(idx, -1)).amax(dim=1, keepdim=True)
            return mask & (idx == last)
        return mask & (pos == self.last_prompt.to(device)[:, None])


class PositionTracker:
    """Records each forward's cache offset, mask and prompt length (see the module docstring for the rules)."""

    def __init__(self) -> None:
        self.info: ForwardInfo | None = None
        self._tokens: Tensor | None = None  # the last uncached forward's input ids
        self._cache_ref: Any = None
        self._total = 0
        self._handle: Any = None
        self._depth = 0
        self._model: TransformerBridge | None = None
        self._lengths: Tensor | None = None  # real lengths of a right-padded list input, set by the forward wrapper
        self._generating = False  # inside generate(): only there may an uncached forward continue the last one
        self._prompt_override: int | None = None
        self._last_fed = True
        self._owner: int | None = None  # the thread that attached tracking: only its forwards are tracked

    @contextmanager
    def prompt_length(self, n: int, last_fed: bool = True) -> Iterator[PositionTracker]:
        """Teacher-forced forwards: each forward in the block is a new prompt made of its first ``n`` positions.

        The rest of the sequence (the scored answer) counts as generated. Rows must be laid out so that every
        prompt ends at position ``n - 1`` (left-pad the prompts, right-pad the answers). ``last_fed=False`` says the
        sequences' final tokens are not fed (scoring feeds ``context + answer[:-1]``), so the ``last`` scope, the
        last position of the full sequence, edits nothing.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ScopeError(f"prompt_length needs a positive int (the padded prompt length), got {n!r}")
        old, self._prompt_override = self._prompt_override, n
        old_fed, self._last_fed = self._last_fed, bool(last_fed)
        self.reset()
        try:
            yield self
        finally:
            self._prompt_override, self._last_fed = old, old_fed
            self.reset()

    @contextmanager
    def final_token_unfed(self) -> Iterator[PositionTracker]:
        """Forwards in this block never feed their sequence's final token (scoring on a KV cache: the context pass,
        then the answer tokens but the last), so the ``last`` scope edits nothing, as in teacher-forced scoring."""
        old, self._last_fed = self._last_fed, False
        try:
            yield self
        finally:
            self._last_fed = old

    def _foreign(self) -> bool:
        """True in a thread other than the one that attached tracking (its forwards are not ours to track)."""
        return self._owner is not None and threading.get_ident() != self._owner

    def reset(self) -> None:
        """Forget the last forward (the next one starts a new prompt)."""
        self.info, self._tokens, self._cache_ref, self._total = None, None, None, 0

    def _pre_hook(self, module: Any, args: tuple, kwargs: dict) -> None:
        if self._foreign():
            return
        ids = args[0] if args and isinstance(args[0], Tensor) else kwargs.get("input_ids")
        embeds = kwargs.get("inputs_embeds")
        if ids is None and embeds is None:
            self.reset()
            return
        ref = ids if ids is not None else embeds
        batch, n_new = int(ref.shape[0]), int(ref.shape[1])
        cache = kwargs.get("past_key_values", kwargs.get("cache"))
        attn = kwargs.get("attention_mask")
        if attn is not None and (not isinstance(attn, Tensor) or attn.ndim != 2):
            attn = None
        prev = self.info
        past, cont = 0, False
        override = self._prompt_override
        if override is not None:
            if override > n_new:
                raise ScopeError(
                    f"prompt_length({override}) is longer than the forward's {n_new} tokens; "
                    "the prompt must be part of the teacher-forced sequence"
                )
            prev = None  # teacher forcing: never a continuation
        if prev is not None and cache is not None and cache is self._cache_ref and prev.batch == batch:
            past, cont = self._total, True
        elif attn is not None and attn.shape[1] > n_new and prev is not None:
            past, cont = int(attn.shape[1]) - n_new, True
        elif (
            self._generating and prev is not None and cache is None and ids is not None and self._tokens is not None
            and self._tokens.shape[0] == batch and n_new == self._tokens.shape[1] + 1
            and torch.equal(ids[:, :-1].to(self._tokens.device), self._tokens)
        ):
            cont = True  # next step of an uncached generation: whole sequence recomputed
        lengths = self._lengths
        if attn is None and lengths is not None and not cont and len(lengths) == batch and int(lengths.max()) == n_new:
            attn = torch.arange(n_new)[None, :] < lengths[:, None]  # right padding: real tokens come first
            attn = attn.to(ref.device)
        if attn is not None:
            full = attn.bool()
            new_mask = full[:, -n_new:]
        else:
            full, new_mask = None, torch.ones(batch, n_new, dtype=torch.bool, device=ref.device)
        if cont and (prev.last_prompt.shape[0] == batch or full is None or full.shape[1] < prev.prompt_len):
            prompt_len, last_prompt = prev.prompt_len, prev.last_prompt
        elif cont:  # the prompt's cache rows were repeated (one row per choice): read each row's prompt from its mask
            prompt_len = prev.prompt_len
            idx = torch.arange(prompt_len, device=full.device).expand(batch, -1)
            last_prompt = torch.where(full[:, :prompt_len], idx, torch.full_like(idx, -1)).amax(dim=1)
        else:
            prompt_len = past + n_new if override is None else override
            if full is not None and full.shape[1] == past + n_new:
                idx = torch.arange(prompt_len, device=full.device).expand(batch, -1)
                last_prompt = torch.where(full[:, :prompt_len], idx, torch.full_like(idx, -1)).amax(dim=1)
            else:
                last_prompt = torch.full((batch,), prompt_len - 1, device=ref.device)
        self.info = ForwardInfo(batch, n_new, past, prompt_len, new_mask, last_prompt,
                                last_fed=self._last_fed)
        self._total = past + n_new
        self._cache_ref = cache
        # kept only where an uncached continuation can follow (inside generate): no copy on plain forwards
        self._tokens = ids.detach().clone() if (ids is not None and cache is None and self._generating) else None

    @staticmethod
    def _target(model: TransformerBridge) -> torch.nn.Module:
        target = getattr(model, "original_model", None)
        if not isinstance(target, torch.nn.Module):
            raise SteeringError(
                f"{type(model).__name__} has no 'original_model' module to track positions on; "
                "position scopes other than 'all' need a TransformerLens TransformerBridge"
            )
        return target

    @property
    def active(self) -> bool:
        """Whether a [`tracking()`][tl_steer.core.tracking] (or [`steer()`][tl_steer.core.steer]) block is attached."""
        return self._handle is not None

    def attach(self, model: TransformerBridge) -> None:
        """Attach (nested calls count; each needs one [`tl_steer.core.PositionTracker.release()`][tl_steer.core.PositionTracker.release]).

        Two things are attached while tracking is on: a forward pre-hook on ``model.original_model`` (cache offset,
        mask, prompt length) and a wrapper around the bridge's own ``forward`` that records each row's real length
        when a list of strings is padded on the right (TL passes no attention mask to the model then).
        """
        if self._handle is None:
            self._owner = threading.get_ident()
            self._handle = self._target(model).register_forward_pre_hook(self._pre_hook, with_kwargs=True)
            if "forward" not in vars(model) and callable(getattr(model, "to_tokens", None)):
                model.forward = self._wrap_forward(model, type(model).forward.__get__(model))
            for name in ("generate", "hf_generate"):
                if name not in vars(model) and callable(getattr(type(model), name, None)):
                    setattr(model, name, self._wrap_generate(getattr(type(model), name).__get__(model)))
            self._model = model
            self.reset()
        self._depth += 1

    def release(self) -> None:
        """Undo one [`tl_steer.core.PositionTracker.attach()`][tl_steer.core.PositionTracker.attach]; the last one removes everything attached and forgets the last forward."""
        self._depth = max(0, self._depth - 1)
        if self._depth == 0 and self._handle is not None:
            self._handle.remove()
            self._handle = None
            for name in ("forward", "generate", "hf_generate"):
                fn = vars(self._model).get(name) if self._model is not None else None
                if getattr(fn, "_tl_steer_tracker", None) is self:
                    delattr(self._model, name)
            self._model = None
            self._owner = None
        self.reset()

    @contextmanager
    def on_module(self, module: torch.nn.Module) -> Iterator[PositionTracker]:
        """Track the forwards (and ``generate``) of a plain Hugging Face model for one block, as
        [`attach()`][tl_steer.core.PositionTracker.attach] tracks a bridge's ``original_model``: how hooks built for a
        bridge run on its Hugging Face twin ([`tl_steer.fast`][tl_steer.fast]). Nestable on the same module (one
        tracker per module: [`module_tracker()`][tl_steer.core.module_tracker])."""
        if self._handle is not None:
            if self._model is not module or self._foreign():
                raise SteeringError("this position tracker is already attached elsewhere; use a fresh PositionTracker()")
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._owner = threading.get_ident()
        self._handle = module.register_forward_pre_hook(self._pre_hook, with_kwargs=True)
        self._depth, self._model = 1, module
        patched = callable(getattr(type(module), "generate", None)) and "generate" not in vars(module)
        if patched:
            module.generate = self._wrap_generate(type(module).generate.__get__(module))
        self.reset()
        try:
            yield self
        finally:
            self._handle.remove()
            self._handle, self._depth, self._model, self._owner = None, 0, None, None
            if patched:
                del module.generate
            self.reset()

    def _wrap_forward(self, model: TransformerBridge, forward: Callable[..., Any]) -> Callable[..., Any]:
        def tracked_forward(*args: Any, **kwargs: Any) -> Any:
            if self._foreign():
                return forward(*args, **kwargs)
            self._lengths = self._right_padded_lengths(model, args, kwargs)
            try:
                return forward(*args, **kwargs)
            finally:
                self._lengths = None

        tracked_forward._tl_steer_tracker = self  # type: ignore[attr-defined]
        return tracked_forward

    def _wrap_generate(self, generate: Callable[..., Any]) -> Callable[..., Any]:
        def tracked_generate(*args: Any, **kwargs: Any) -> Any:
            if self._foreign():
                return generate(*args, **kwargs)
            outer, self._generating = self._generating, True
            self.reset()  # a generation always starts from a new prompt
            try:
                return generate(*args, **kwargs)
            finally:
                self._generating = outer

        tracked_generate._tl_steer_tracker = self  # type: ignore[attr-defined]
        return tracked_generate

    @staticmethod
    def _right_padded_lengths(model: TransformerBridge, args: tuple, kwargs: dict) -> Tensor | None:
        """Each row's token count when ``forward`` gets a list of strings that TL pads on the right, else None."""
        text = args[0] if args else kwargs.get("input")
        if not isinstance(text, (list, tuple)) or len(text) < 2 or not all(isinstance(t, str) for t in text):
            return None
        if kwargs.get("attention_mask") is not None:
            return None
        side = kwargs.get("padding_side") or getattr(getattr(model, "tokenizer", None), "padding_side", "right")
        if side == "left":
            return None  # TL derives the mask itself
        bos = kwargs.get("prepend_bos")
        return torch.tensor([int(model.to_tokens(t, prepend_bos=bos).shape[1]) for t in text])


_TRACKERS: weakref.WeakKeyDictionary[Any, PositionTracker] = weakref.WeakKeyDictionary()
_MODULE_TRACKERS: weakref.WeakKeyDictionary[Any, PositionTracker] = weakref.WeakKeyDictionary()
_LOCKS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def tracker_for(model: TransformerBridge) -> PositionTracker:
    """The model's [`PositionTracker`][tl_steer.core.PositionTracker] (created on first use, never attached here: see [`tracking()`][tl_steer.core.tracking])."""
    tracker = _TRACKERS.get(model)
    if tracker is None:
        PositionTracker._target(model)  # refuse models without original_model early
        tracker = _TRACKERS[model] = PositionTracker()
    return tracker


def module_tracker(module: torch.nn.Module) -> PositionTracker:
    """The one [`PositionTracker`][tl_steer.core.PositionTracker] of a plain Hugging Face model (what nested
    [`tl_steer.fast.hf_steer()`][tl_steer.fast.hf_steer] blocks share)."""
    tracker = _MODULE_TRACKERS.get(module)
    if tracker is None:
        tracker = _MODULE_TRACKERS[module] = PositionTracker()
    return tracker


def model_lock(model: Any) -> Any:
    """The re-entrant lock that [`tracking()`][tl_steer.core.tracking] (and so [`steer()`][tl_steer.core.steer]) holds on
    ``model`` for its whole block: steering blocks of one model in several threads run one after another, each
    correct; nested blocks in one thread are fine."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
    return lock


@contextmanager
def tracking(model: TransformerBridge) -> Iterator[PositionTracker]:
    """Track positions on ``model`` for the duration of a ``with`` block (nestable, removed on exceptions too).

    [`steer()`][tl_steer.core.steer] does this for you. Use it directly around raw TL calls whose hooks use a position scope other than
    ``"all"``::

        with tl_steer.tracking(model):
            model.run_with_hooks(tokens, fwd_hooks=sadi.hooks(model))

    **Threads.** The block holds the model's lock ([`model_lock()`][tl_steer.core.model_lock]): another thread's
    ``tracking``/``steer`` on the same model waits until this block ends. Only this thread's forwards are tracked.
    """
    tracker = tracker_for(model)
    lock = model_lock(model)
    with lock:
        tracker.attach(model)
        try:
            yield tracker
        finally:
            tracker.release()


@dataclass(frozen=True, eq=False)
class ThreadBound:
    """A hook that edits only in the thread that attached it (``owner``); in any other thread the activation passes
    through unchanged. [`steer()`][tl_steer.core.steer] attaches every hook this way, so a thread that runs the same
    model without steering gets unsteered results while another thread steers it."""

    fn: HookFn
    owner: int

    def __call__(self, activation: Tensor, hook: Any) -> Tensor | None:
        if threading.get_ident() != self.owner:
            return activation
        return self.fn(activation, hook=hook)


@dataclass(frozen=True, eq=False)
class Scoped:
    """Apply ``fn`` only at the union of the position scopes ``positions``; elsewhere the activation passes through.

    ``fn`` runs once per call; positions in several scopes of the union are edited once. A scoped hook is bound to
    the model it was built for (``tracker``) and reads that model's position tracker, which [`steer()`][tl_steer.core.steer] or
    [`tracking()`][tl_steer.core.tracking] attach. Without tracking, ``"all"`` edits every position (padding included, harmless under
    the attention mask) and any other scope raises [`ScopeError`][tl_steer.errors.ScopeError].
    """

    fn: HookFn
    positions: tuple[Positions, ...]
    tracker: PositionTracker | None

    def __call__(self, activation: Tensor, hook: Any) -> Tensor:
        edited = self.fn(activation, hook=hook)
        if edited is None:
            raise SteeringError(
                f"steering function {self.fn!r} at hook {getattr(hook, 'name', hook)!r} returned None; "
                "tl_steer hooks must return the edited activation (and never edit in place)"
            )
        if edited.dtype == torch.float16 and not bool(torch.isfinite(edited).all()) and bool(
                torch.isfinite(activation).all()):
            raise SteeringError(
                f"hook {getattr(hook, 'name', hook)!r}: the steered activation overflows float16 (largest finite "
                "value 65504) although its input was finite; lower the strength, or run the model in bfloat16 or "
                "float32"
            )
        everywhere = self.positions == (Positions.ALL,)
        tracker = self.tracker
        if tracker is None or (everywhere and not tracker.active):
            return edited
        if tracker._foreign():  # another thread holds the tracking: this forward is not the tracked one
            return activation
        info = tracker.info
        if info is None or activation.shape[0] != info.batch or activation.shape[1] != info.n_new:
            raise self._scope_error(activation, hook, tracker)  # strings are built on this error path only
        keep = info.keep(self.positions, activation.device)
        keep = keep.reshape(keep.shape + (1,) * (activation.ndim - 2))
        return torch.where(keep, edited, activation)


    @property
    def rows(self) -> int | None:
        """How many batch rows the wrapped hook's own values are tied to (per-row strengths, SADI's clean values),
        or None when it edits any batch alike ([`bound_rows()`][tl_steer.core.bound_rows])."""
        return bound_rows(self.fn)

    def _scope_error(self, activation: Tensor, hook: Any, tracker: PositionTracker) -> ScopeError:
        name = getattr(hook, "name", hook)
        scope = "+".join(p.value for p in self.positions)
        info = tracker.info
        if not tracker.active:
            return ScopeError(
                f"hook {name!r} uses position scope {scope!r} but positions are not tracked on its model; run it "
                "inside `with tl_steer.steer(model, hooks):`, or wrap raw TL calls in `with tl_steer.tracking(model):`"
            )
        if info is None:
            return ScopeError(
                f"hook {name!r} uses position scope {scope!r} but no forward pass of its model was tracked; was it "
                "built for another model? Build the hooks with the model you run (method.hooks(model, ...))"
            )
        return ScopeError(
            f"hook {name!r}: activation has (batch, pos) = {tuple(activation.shape[:2])} but the tracked "
            f"forward has ({info.batch}, {info.n_new}); position scopes need (batch, pos, ...) activations "
            "of the model's own forward pass"
        )


def bound_rows(fn: Any) -> int | None:
    """The batch size a hook function's own values are tied to (``fn.rows``: per-row strengths, SADI reference mode's
    clean values), else None. Code that reorders, deduplicates or re-batches rows (the scorers) must refuse such
    hooks: row ``i`` of their values belongs to row ``i`` of the batch they were built for."""
    rows = getattr(fn, "rows", None)
    return int(rows) if isinstance(rows, int) and not isinstance(rows, bool) else None


def scoped(fn: HookFn, positions: PositionSpec = Positions.ALL, model: TransformerBridge | None = None) -> HookFn:
    """Wrap a hook so it edits only ``positions``: one scope or a union such as ``"last_prompt+generated"``.

    Pure: building a scoped hook attaches nothing to ``model`` (see [`tracking()`][tl_steer.core.tracking]). ``"all"`` still skips
    padding when positions are tracked.
    """
    ps = parse_position_set(positions)
    if model is None:
        if ps != (Positions.ALL,):
            raise ScopeError(
                f"position scope {'+'.join(p.value for p in ps)!r} needs the model: scoped(fn, positions, model)"
            )
        return Scoped(fn, ps, None)
    return Scoped(fn, ps, tracker_for(model))


def flatten_hooks(hooks: Iterable[Any]) -> HookList:
    """``(hook_name, fn)`` pairs from hook lists, single pairs and nested lists (a method object is refused)."""
    out: HookList = []
    for item in hooks:
        if hasattr(item, "hooks") and callable(item.hooks) and not isinstance(item, tuple):
            raise SteeringError(
                f"steer() got a {type(item).__name__}; pass its hook list: method.hooks(model, ...)"
            )
        if isinstance(item, tuple) and len(item) == 2 and (isinstance(item[0], str) or (
                callable(item[0]) and callable(item[1]) and not isinstance(item[0], tuple))):
            out.append(item)
        elif isinstance(item, (list, tuple)):
            out.extend(flatten_hooks(item))
        else:
            raise SteeringError(
                f"steer() expects (hook_name, fn) pairs or lists of them, got {type(item).__name__}: {item!r}"
            )
    return out


class HookBlock:
    """A ``with`` block that attaches hooks for its duration, entered once: what [`steer()`][tl_steer.core.steer] and
    [`tl_steer.fast.hf_steer()`][tl_steer.fast.hf_steer] share. A subclass attaches everything onto the exit stack
    in ``_open`` (which returns what ``with ... as`` gives); the stack is closed on exit, and at once when ``_open``
    raises, so nothing leaks. Entering the same object twice raises ``_reentry``."""

    _reentry = "this block was already entered; create a new one for each `with` block"

    def __init__(self) -> None:
        self._stack: ExitStack | None = None
        self._used = False

    def _open(self, stack: ExitStack) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Any:
        if self._used:
            raise SteeringError(self._reentry)
        self._used = True
        stack = ExitStack()
        try:
            out = self._open(stack)
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return out

    def __exit__(self, *exc: Any) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()


def expand_filters(model: TransformerBridge, pairs: HookList) -> HookList:
    """TL's name filters: a pair ``(filter, fn)`` whose filter is a callable ``name -> bool`` becomes one pair per
    HookPoint of ``model`` whose name passes it, in ``model.hook_dict`` order. A HookPoint that TL lists under several
    names (canonical and legacy aliases) is hooked once, under the first name that passes; a filter that passes
    nothing is an error (a typo would otherwise steer nothing)."""
    out: HookList = []
    for name, fn in pairs:
        if isinstance(name, str):
            out.append((name, fn))
            continue
        seen: set[int] = set()
        hits = []
        for hook_name_, hp in getattr(model, "hook_dict", {}).items():
            if id(hp) in seen or not name(hook_name_):
                continue
            seen.add(id(hp))
            hits.append((hook_name_, fn))
        if not hits:
            raise SteeringError(f"the name filter {name!r} matches no hook of this model; check it against model.hook_dict")
        out.extend(hits)
    return out


def check_hook_pairs(pairs: HookList, tracker: PositionTracker | None, fix: str) -> None:
    """Every hook is callable, and every scoped hook was built for the model whose position tracker is ``tracker``
    (else ``"the hook for ... was built for another model; " + fix``)."""
    for name, fn in pairs:
        if not callable(fn):
            raise SteeringError(f"the hook for {name!r} is not callable: {fn!r}")
        if isinstance(fn, Scoped) and fn.tracker is not None and fn.tracker is not tracker:
            raise SteeringError(f"the hook for {name!r} was built for another model; {fix}")


class steer(HookBlock):  # noqa: N801 - used like a function: ``with steer(model, hooks):``
    """Attach steering hooks for the duration of a ``with`` block, built on TL's ``model.hooks(...)``.

    ``with steer(model, sadi.hooks(model), caa.hooks(model)): model.generate(...)``. Hook names are checked
    against ``model.hook_dict`` first (with near matches in the error), and scoped hooks must have been built for
    ``model``. Position tracking is attached on enter; hooks and tracking are removed on exit, also when the block
    raises. A ``steer`` object is entered once; build a new one for the next block.

    Args:
        model: the ``TransformerBridge`` to steer.
        *hooks: hook lists ``[(hook_name, fn), ...]`` (as returned by ``method.hooks(model)``) or single pairs;
            several lists are concatenated and all run. As in TL's ``run_with_hooks``, a name may be a filter,
            a callable ``name -> bool`` ([`expand_filters()`][tl_steer.core.expand_filters]).

    ``with steer(model, hooks) as m:`` gives back ``model``.
    """

    _reentry = ("this steer(...) context was already entered; create a new one for each `with` block: "
                "`with tl_steer.steer(model, hooks):`")

    def __init__(self, model: TransformerBridge, *hooks: Sequence[tuple[str, HookFn]] | tuple[str, HookFn]) -> None:
        super().__init__()
        pairs = expand_filters(model, flatten_hooks(hooks))
        for name, _ in pairs:
            validate_hook_name(model, name)
        check_hook_pairs(pairs, _TRACKERS.get(model), "build it for this one: method.hooks(model)")
        self.model, self.pairs = model, pairs

    def _open(self, stack: ExitStack) -> Any:
        stack.enter_context(tracking(self.model))
        owner = threading.get_ident()
        try:
            stack.enter_context(self.model.hooks(fwd_hooks=[(n, ThreadBound(fn, owner)) for n, fn in self.pairs]))
        except (ValueError, RuntimeError, AssertionError) as e:
            if isinstance(e, SteeringError):
                raise
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SteeringError(
                f"TransformerLens refused to attach the hooks at {[n for n, _ in self.pairs][:4]}: {first}"
            ) from e
        return self.model


def as_strengths(value: Any, what: str = "strength") -> float | Tensor:
    """A hook's strength: one number ([`as_strength()`][tl_steer.core.as_strength]), or one finite number per batch
    row (a 1-D float/int tensor, list or tuple of numbers), so that a sweep over N strengths runs as one batch of N
    copies. The per-row tensor is a copy (later edits of the caller's tensor do not change the method); bools,
    nested lists and tensors without values (the meta device) are refused."""
    if isinstance(value, (list, tuple)):
        if not value or any(isinstance(v, bool) or not isinstance(v, (int, float)) and not (
                isinstance(v, Tensor) and v.ndim == 0 and not v.dtype == torch.bool) for v in value):
            raise SteeringError(
                f"per-row {what}s must be a non-empty flat list of numbers (one per batch row), got {value!r}"
            )
        value = torch.tensor([float(v) for v in value], dtype=torch.float32)
    if isinstance(value, Tensor) and value.ndim == 1:
        if value.device.type == "meta":
            raise SteeringError(f"per-row {what}s on the meta device hold no values; pass them on cpu or cuda")
        if value.dtype == torch.bool or value.is_complex():
            raise SteeringError(f"per-row {what}s must be real numbers, got a {value.dtype} tensor {value.tolist()!r}")
        t = value.detach().to("cpu", torch.float32).clone()
        if t.numel() == 0 or not bool(torch.isfinite(t).all()):
            raise SteeringError(f"per-row {what}s must be a non-empty 1-D list of finite numbers, got {value!r}")
        return t
    if isinstance(value, Tensor) and value.ndim > 1:
        raise SteeringError(
            f"{what} must be a number or a 1-D tensor (one per batch row), got a tensor of shape {tuple(value.shape)}"
        )
    return as_strength(value, what)


def row_scale(strength: float | Tensor, activation: Tensor, hook: Any = None) -> float | Tensor:
    """``strength`` ready to multiply a ``(batch, pos, *feature)`` activation: a number as is, per-row strengths as a
    ``(batch, 1, ..., 1)`` tensor in the activation's dtype and device (their count must equal the batch)."""
    if not isinstance(strength, Tensor):
        return strength
    if strength.shape[0] != activation.shape[0]:
        name = getattr(hook, "name", hook)
        raise SteeringError(
            f"hook {name!r}: {strength.shape[0]} per-row strengths for a batch of {activation.shape[0]} rows; pass one "
            "strength per row (repeat the inputs once per strength), or a single number"
        )
    return strength.to(device=activation.device, dtype=activation.dtype).view(-1, *([1] * (activation.ndim - 1)))


def as_strength(value: Any, what: str = "strength") -> float:
    """``float(value)``, refusing bools, NaN and infinities with a [`SteeringError`][tl_steer.errors.SteeringError]."""
    if isinstance(value, Tensor) and (value.dtype == torch.bool or value.device.type == "meta" or value.is_complex()):
        raise SteeringError(f"{what} must be a finite real number, got a {value.dtype} tensor on {value.device}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not (
        isinstance(value, Tensor) and value.numel() == 1
    ):
        raise SteeringError(f"{what} must be a finite number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise SteeringError(f"{what} must be a finite number, got {out}; use a value such as 1.0")
    return out


def saved_strength(config: dict[str, Any], legacy: str) -> Any:
    """The ``strength`` of a saved config (format 1 named it ``legacy``); ``KeyError('strength')`` when neither is
    there, so the loader's message names the current field."""
    if "strength" in config:
        return config["strength"]
    if legacy in config:
        return config[legacy]
    raise KeyError("strength")
