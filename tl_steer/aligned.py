"""Prompt-aligned teacher-forced scoring: the one token layout, and the one BOS rule, that every scorer uses.

A continuation is scored as the summed log-probability of its tokens given its context, in one forward of
``context + continuation[:-1]`` (the last token is never fed). Rows are laid out *prompt-aligned*::

    [pad pad  c0 c1 c2 c3 | a0 a1 pad]
    [c0 c1 c2 c3 c4 c5 c6 | a0 pad pad]
                        ^ every context ends at column P-1

(left padding before the context, right padding after the answer, with an attention mask). Every row's last context
token sits at column ``P - 1``, so the position tracker is told ``prompt_length(P)``: a method scoped to
``last_prompt`` edits the last context token (as in the prefill of a generation), ``prompt`` the context,
``generated`` the answer tokens, and padding is never edited.

The BOS rule is the model's own ([`scoring_bos()`][tl_steer.aligned.scoring_bos], the rule activations are read
with when fitting). [`tl_steer.eval.scoring`][tl_steer.eval.scoring] (``evaluate``) and
[`tl_steer.sweep`][tl_steer.sweep] (``sweep_strength``, ``margin_sweep``, ``continuation_logprob``) all encode with
[`encode()`][tl_steer.aligned.encode] and run rows with [`aligned_logprobs()`][tl_steer.aligned.aligned_logprobs],
so a strength chosen on validation data is scored exactly as the test set is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._types import TransformerBridge
from .collect import default_prepend_bos
from .core import tracker_for
from .errors import SteeringError


def scoring_bos(model: TransformerBridge) -> bool:
    """Whether a BOS token goes before each context: the model's own tokenizer rule
    ([`tl_steer.collect.default_prepend_bos()`][tl_steer.collect.default_prepend_bos], which
    [`tl_steer.models.load()`][tl_steer.models.load] sets from the original tokenizer). On the two real models this
    is lm-evaluation-harness's rule too (Gemma: BOS; SmolLM2: none; tested)."""
    return default_prepend_bos(model)


def pad_token_id(model: TransformerBridge) -> int:
    """The id used for padding (the tokenizer's pad token, else its EOS, else 0); masked out, never scored."""
    tok = model.tokenizer
    return tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)


def _split_ws(context: str, continuation: str) -> tuple[str, str]:
    stripped = context.rstrip(" ")
    return stripped, context[len(stripped):] + continuation


def encode(model: TransformerBridge, context: str, continuation: str, bos: bool | None = None) -> tuple[list[int], list[int]]:
    """Token ids of ``context`` (after BOS when ``bos``; default [`scoring_bos()`][tl_steer.aligned.scoring_bos]) and
    of ``continuation``, tokenised separately (spaces at the end of the context move to the continuation's start).
    Contexts longer than the model's ``n_ctx`` are cut from the left (after the BOS token)."""
    tok = model.tokenizer
    if tok is None:
        raise SteeringError("scoring needs a model with a tokenizer (model.tokenizer is None)")
    context, continuation = _split_ws(context, continuation)
    if not continuation:
        raise SteeringError(f"empty continuation after context {context[-60:]!r}; every choice must be non-empty")
    ctx = list(tok(context, add_special_tokens=False)["input_ids"]) if context else []
    bos_id = getattr(tok, "bos_token_id", None)
    if (scoring_bos(model) if bos is None else bos) and bos_id is not None:
        ctx = [bos_id] + ctx
    if not ctx:
        raise SteeringError(
            "empty context and no BOS token: the first continuation token has nothing to be conditioned on; "
            "give the item a prompt or score with bos=True"
        )
    cont = list(tok(continuation, add_special_tokens=False)["input_ids"])
    if not cont:
        raise SteeringError(f"continuation {continuation!r} encodes to no tokens")
    n_ctx = getattr(model.cfg, "n_ctx", None)
    if n_ctx is not None and len(ctx) + len(cont) - 1 > n_ctx:
        keep = n_ctx - len(cont) + 1
        if keep < 1:
            raise SteeringError(f"continuation of {len(cont)} tokens does not fit the model's n_ctx={n_ctx}")
        head = ctx[:1] if (bos_id is not None and ctx[0] == bos_id) else []
        ctx = head + ctx[len(ctx) - keep + len(head):]
    return ctx, cont


@torch.no_grad()
def aligned_logprobs(model: TransformerBridge, seqs: Sequence[tuple[Sequence[int], Sequence[int]]],
                     pad_id: int | None = None) -> torch.Tensor:
    """Log-probs from each row's last context token on, ``(batch, A + 1, d_vocab)``, for rows ``(context ids, fed
    continuation ids)`` (the continuation without its last token). Runs under whatever hooks are attached."""
    pad_id = pad_token_id(model) if pad_id is None else pad_id
    P = max(len(c) for c, _ in seqs)
    A = max(len(a) for _, a in seqs)
    device = getattr(model.cfg, "device", None) or "cpu"
    tokens = torch.full((len(seqs), P + A), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), P + A), dtype=torch.long)
    for r, (c, a) in enumerate(seqs):
        row = list(c) + list(a)
        tokens[r, P - len(c): P + len(a)] = torch.tensor(row, dtype=torch.long)
        mask[r, P - len(c): P + len(a)] = 1
    tokens, mask = tokens.to(device), mask.to(device)
    with tracker_for(model).prompt_length(P, last_fed=False):  # the final answer token is never fed
        logits = model(tokens, attention_mask=mask, return_type="logits")
    return logits[:, P - 1:].float().log_softmax(-1)


def continuation_sum(logp: torch.Tensor, cont: Sequence[int]) -> torch.Tensor:
    """Summed log-prob of the continuation ``cont`` from one row of [`aligned_logprobs()`][tl_steer.aligned.aligned_logprobs]."""
    idx = torch.tensor(list(cont), device=logp.device)
    return logp[torch.arange(len(cont), device=logp.device), idx].sum()
