"""Log-likelihood scoring of multiple-choice items, batched, padding-correct and steering-aware.

Each choice is scored as the summed log-probability of its continuation tokens given its context, in one
teacher-forced forward of ``context + continuation``, with the prompt-aligned layout and the BOS rule of
[`tl_steer.aligned`][tl_steer.aligned] (the same ones ``sweep_strength`` scores validation data with): every row's last
context token sits at one column, so position scopes keep their generation meaning (``last_prompt`` edits the last
context token, ``generated`` the answer tokens, padding is never edited). Scores equal one-by-one scoring up to
float error (tested).

Details:

* The context and the continuation are tokenised separately, so all choices of an item share the same context
  tokens; whitespace at the end of the context moves to the start of the continuation.
* BOS: the model's own tokenizer rule ([`tl_steer.aligned.scoring_bos()`][tl_steer.aligned.scoring_bos]); on
  SmolLM2 and Gemma-3 it is lm-evaluation-harness's too (Gemma: BOS, SmolLM2: none). ``bos=True/False`` overrides
  it; the results record it. (SmolLM2's BOS is the chat marker ``<|im_start|>``: putting it in front of every
  context changed 24 of 200 TruthfulQA predictions.)
* The last continuation token never needs to be fed: the forward is ``context + continuation[:-1]``. Identical fed
  sequences are computed once, so single-token choices (`` Yes``/`` No``, `` A``..`` D``) cost one forward per item.
* Contexts longer than the model's ``n_ctx`` are truncated from the left (after the BOS token).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from .._types import TransformerBridge
from ..aligned import aligned_logprobs, encode, pad_token_id
from ..core import HookList, steer, tracker_for
from ..errors import SteeringError, check_int
from .items import MCItem

Normalize = Literal["none", "token", "char"]


@dataclass(frozen=True)
class ChoiceScores:
    """Per-choice summed log-likelihoods of one item, with the lengths needed to normalise them."""

    logprob: tuple[float, ...]
    n_tokens: tuple[int, ...]
    n_chars: tuple[int, ...]
    #: per choice, the decoded argmax tokens at its continuation's positions (what greedy decoding would say there,
    #: given the choice's own earlier tokens): the SADI reference's exact-match metric reads it
    greedy: tuple[str, ...] = ()

    def get(self, normalize: Normalize = "none") -> tuple[float, ...]:
        """The per-choice scores, summed (``"none"``) or normalised per token or per character."""
        if normalize == "none":
            return self.logprob
        if normalize == "token":
            return tuple(lp / max(n, 1) for lp, n in zip(self.logprob, self.n_tokens, strict=True))
        if normalize == "char":
            return tuple(lp / max(n, 1) for lp, n in zip(self.logprob, self.n_chars, strict=True))
        raise SteeringError(f"normalize must be 'none', 'token' or 'char', got {normalize!r}")


def _batches(
    seqs: list[tuple[tuple[int, ...], tuple[int, ...]]], order: list[int], batch_size: int, n_ctx: int | None
) -> list[list[int]]:
    """Consecutive chunks of ``order`` of at most ``batch_size`` rows whose aligned width fits ``n_ctx``."""
    out: list[list[int]] = []
    cur: list[int] = []
    P = A = 0
    for s in order:
        p, a = max(P, len(seqs[s][0])), max(A, len(seqs[s][1]))
        if cur and (len(cur) >= batch_size or (n_ctx is not None and p + a > n_ctx)):
            out.append(cur)
            cur, p, a = [], len(seqs[s][0]), len(seqs[s][1])
        cur.append(s)
        P, A = p, a
    if cur:
        out.append(cur)
    return out


def refuse_row_bound(hooks: HookList | None, scorer: str, rows_in_order: int | None = None) -> None:
    """Scorers reorder (longest first), deduplicate and re-batch rows, so hooks whose values are tied to the rows of
    one batch (per-row strengths, a reference mode's clean values) would meet the wrong items: refuse them, unless
    their row count is ``rows_in_order``, a batch the scorer runs as given (one sequence in all; a batch that
    ``score_last_token``'s config function built its hooks for)."""
    from ..core import bound_rows

    for name, fn in hooks or []:
        rows = bound_rows(fn)
        if rows is not None and rows != rows_in_order:
            raise SteeringError(
                f"{scorer}: the hook at {name!r} carries values for each of {rows} batch rows (per-row strengths or "
                f"reference-mode clean values); {scorer} reorders and re-batches rows, so they would be applied to "
                "the wrong items. Use one strength; for a reference mode use score_last_token(..., "
                "configs={label: lambda clean: method.hooks(model, mode='reference', clean=clean)}, "
                "clean_names=method.clean_names()), which computes the clean values batch by batch"
            )


def score_items(
    model: TransformerBridge,
    items: Sequence[MCItem],
    hooks: HookList | None = None,
    batch_size: int = 8,
    progress: bool = False,
    desc: str = "score",
    bos: bool | None = None,
) -> list[ChoiceScores]:
    """Summed log-likelihood (and lengths) of every choice of every item, under ``hooks`` (a TL hook list).

    ``bos``: put the BOS token before each context (default [`scoring_bos()`][tl_steer.aligned.scoring_bos], the
    model's own rule)."""
    check_int(batch_size, "batch_size", 1)
    seq_index: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
    targets: list[tuple[int, tuple[int, ...]]] = []
    for item in items:
        for j, choice in enumerate(item.choices):
            ctx, cont = encode(model, item.context(j), choice, bos)
            key = (tuple(ctx), tuple(cont[:-1]))
            if key not in seq_index:
                seq_index[key] = len(seq_index)
            targets.append((seq_index[key], tuple(cont)))
    seqs = list(seq_index)
    refuse_row_bound(hooks, "score_items", 1 if len(seqs) == 1 else None)
    order = sorted(range(len(seqs)), key=lambda s: -(len(seqs[s][0]) + len(seqs[s][1])))
    tok = model.tokenizer
    pad_id = pad_token_id(model)
    by_seq: dict[int, list[int]] = {}
    for r, (s, _) in enumerate(targets):
        by_seq.setdefault(s, []).append(r)
    result = [0.0] * len(targets)
    greedy_ids: list[list[int]] = [[] for _ in targets]
    batches = _batches(seqs, order, batch_size, getattr(model.cfg, "n_ctx", None))
    # the bar counts items, advanced in proportion to the tokens each batch computes: longest prompts run first,
    # so counting batches (or rows) would make the first ETA far too long
    cost = [len(batch) * max(len(seqs[s][0]) + len(seqs[s][1]) for s in batch) for batch in batches]
    total = float(sum(cost)) or 1.0
    bar = tqdm(total=len(items), desc=desc, disable=not progress, leave=False, unit="item",
               bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} items [{elapsed}<{remaining}]")
    with steer(model, hooks or []), bar:
        for batch, c in zip(batches, cost, strict=True):
            logp = aligned_logprobs(model, [seqs[s] for s in batch], pad_id)
            bar.update(len(items) * c / total)
            for row, s in enumerate(batch):
                for r in by_seq[s]:
                    cont = targets[r][1]
                    idx = torch.tensor(cont, device=logp.device)
                    rows = logp[row, : len(cont)]
                    result[r] = float(rows[torch.arange(len(cont), device=logp.device), idx].sum())
                    greedy_ids[r] = rows.argmax(-1).tolist()
    out: list[ChoiceScores] = []
    r = 0
    for item in items:
        n = len(item.choices)
        lps = tuple(result[r: r + n])
        ntok = tuple(len(targets[k][1]) for k in range(r, r + n))
        greedy = tuple(tok.decode(greedy_ids[k], skip_special_tokens=True) for k in range(r, r + n))
        out.append(ChoiceScores(lps, ntok, tuple(len(c.strip()) or 1 for c in item.choices), greedy))
        r += n
    return out


def score_choices(
    model: TransformerBridge,
    items: Sequence[MCItem],
    hooks: HookList | None = None,
    batch_size: int = 8,
    normalize: Normalize = "none",
    progress: bool = False,
) -> list[tuple[float, ...]]:
    """Log-likelihood of each choice of each item (``normalize``: ``"none"`` sum, ``"token"`` or ``"char"`` mean)."""
    return [s.get(normalize) for s in score_items(model, items, hooks, batch_size, progress)]


LastTokenConfig = HookList | Callable[[dict[str, torch.Tensor]], HookList]


def _last_token_only(hooks: HookList, config: str) -> None:
    from ..core import Positions, Scoped

    for name, fn in hooks:
        if not isinstance(fn, Scoped) or not set(fn.positions) <= {Positions.LAST_PROMPT}:
            scope = "+".join(p.value for p in fn.positions) if isinstance(fn, Scoped) else "unscoped"
            raise SteeringError(
                f"score_last_token: config {config!r} has a hook at {name!r} with position scope {scope!r}; the "
                "prefix is computed once without hooks, so only 'last_prompt' edits are exact here. Score it with "
                "score_items instead"
            )


@torch.no_grad()
def score_last_token(
    model: TransformerBridge,
    items: Sequence[MCItem],
    configs: dict[str, LastTokenConfig],
    batch_size: int = 16,
    bos: bool | None = None,
    clean_names: Sequence[str] = (),
    progress: bool = False,
) -> dict[str, list[ChoiceScores]]:
    """Score single-token choices under many hook configurations that edit only the last prompt token.

    The prompt minus its last token is run once per batch without hooks and kept as a KV cache; each configuration
    then runs only the last prompt token on that cache. Exact for hooks scoped to ``last_prompt`` (the positions
    before it are never edited, so their keys and values are the unsteered ones); scores equal [`score_items()`][tl_steer.eval.scoring.score_items]
    up to float error (tested). A config is a hook list, or a function of the unsteered run's activations at the
    last prompt token (``{name: (batch, *feature)}`` at ``clean_names``) that returns one (SADI's reference mode).
    """
    check_int(batch_size, "batch_size", 1)
    if not _hf_cache(model):
        raise SteeringError(
            f"score_last_token reuses a Hugging Face KV cache, which {type(getattr(model, 'original_model', model)).__name__} "
            "(a TL-native model) does not have; score with score_items instead"
        )
    tok = model.tokenizer
    pad_id = pad_token_id(model)
    encoded = []
    for it in items:
        if it.prompts is not None:
            raise SteeringError("score_last_token needs one shared context per item (no per-choice prompts)")
        conts = []
        for c in it.choices:
            ctx, cont = encode(model, it.prompt, c, bos)
            if len(cont) != 1:
                raise SteeringError(f"score_last_token scores one-token choices; {c!r} is {len(cont)} tokens")
            conts.append(cont[0])
        if len(ctx) < 2:
            raise SteeringError(f"score_last_token needs contexts of at least 2 tokens, got {it.prompt!r}")
        encoded.append((ctx, conts))
    order = sorted(range(len(items)), key=lambda i: -len(encoded[i][0]))
    out: dict[str, list[Any]] = {name: [None] * len(items) for name in configs}
    device = getattr(model.cfg, "device", None) or "cpu"
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc="score_last_token", disable=not progress, leave=False):
        tokens, mask = _left_padded([encoded[i][0] for i in batch], pad_id, device)
        _, cache = model(tokens[:, :-1], attention_mask=mask[:, :-1], return_type="logits_and_cache")

        clean: dict[str, torch.Tensor] = {}
        if clean_names:
            _last_logp(model, tokens, mask, cache, [(n, _Keep(clean, n)) for n in clean_names])
        for name, config in configs.items():
            hooks = config(clean) if callable(config) else config
            _last_token_only(hooks, name)
            refuse_row_bound(hooks, "score_last_token", len(batch))
            logp = _last_logp(model, tokens, mask, cache, hooks)
            top = logp.argmax(-1).tolist()
            for r, i in enumerate(batch):
                conts = encoded[i][1]
                lps = tuple(float(logp[r, c]) for c in conts)
                greedy = tok.decode([top[r]], skip_special_tokens=True)
                out[name][i] = ChoiceScores(lps, (1,) * len(conts), tuple(len(c.strip()) or 1 for c in items[i].choices),
                                            (greedy,) * len(conts))
    return out


def _hf_cache(model: TransformerBridge) -> bool:
    """Whether the model runs on a Hugging Face model whose KV cache can be cropped and reordered (TL-native models
    such as ``models.tiny_model()`` cannot)."""
    from transformers import PreTrainedModel

    return isinstance(getattr(model, "original_model", None), PreTrainedModel)


def _left_padded(seqs: Sequence[Sequence[int]], pad_id: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens, attention_mask)`` of token lists left-padded to the longest (every sequence ends in the last column)."""
    width = max(map(len, seqs))
    tokens = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(tokens)
    for r, seq in enumerate(seqs):
        tokens[r, width - len(seq):] = torch.tensor(seq)
        mask[r, width - len(seq):] = 1
    return tokens.to(device), mask.to(device)


@dataclass(frozen=True)
class _Keep:
    """A hook that stores the activation at the fed (last prompt) token under ``name`` and passes it through."""

    store: dict[str, torch.Tensor]
    name: str

    def __call__(self, activation: torch.Tensor, hook: Any) -> torch.Tensor:
        self.store[self.name] = activation[:, -1].detach().clone()
        return activation


def _last_logp(model: TransformerBridge, tokens: torch.Tensor, mask: torch.Tensor, cache: Any, hooks: HookList) -> torch.Tensor:
    """Log-probs after the last prompt token, fed alone on the cache of the rest (the cache is cropped back)."""
    with steer(model, hooks), tracker_for(model).prompt_length(1):
        logits = model(tokens[:, -1:], attention_mask=mask, past_key_values=cache, return_type="logits")
    cache.crop(-1)  # drop the token just added (negative: a count, in every transformers version)
    return logits[:, -1].float().log_softmax(-1)


@torch.no_grad()
def score_items_shared(
    model: TransformerBridge,
    items: Sequence[MCItem],
    hooks: HookList | None = None,
    batch_size: int = 8,
    progress: bool = False,
    desc: str = "score",
    bos: bool | None = None,
) -> list[ChoiceScores]:
    """[`score_items()`][tl_steer.eval.scoring.score_items], running each item's prompt once.

    The choices of an item share its context: one forward of the (left-padded) contexts, with the hooks, gives the
    first continuation token's log-probs and a KV cache; one forward of every choice's remaining tokens on that cache
    (its rows repeated per choice) gives the rest. Scopes keep their meaning: ``prompt`` and ``last_prompt`` edits
    happen in the context pass, ``generated`` edits in the continuation pass. Items with per-choice contexts
    (WinoGrande), or whose context is truncated differently per choice to fit ``n_ctx``, are scored by
    [`score_items()`][tl_steer.eval.scoring.score_items]. Equal to it within 1e-4 (tested); faster when prompts are
    long and choices many (TruthfulQA with its primer).
    """
    check_int(batch_size, "batch_size", 1)
    refuse_row_bound(hooks, "score_items_shared")
    if not _hf_cache(model):  # a TL-native model: its cache cannot be reordered per choice
        return score_items(model, items, hooks, batch_size, progress, desc, bos)
    tok = model.tokenizer
    pad_id = pad_token_id(model)
    device = getattr(model.cfg, "device", None) or "cpu"
    out: list[ChoiceScores | None] = [None] * len(items)
    enc = {i: [encode(model, it.prompt, c, bos) for c in it.choices] for i, it in enumerate(items) if it.prompts is None}
    # one context per item, unless the choices have their own (WinoGrande) or truncation to n_ctx cut it differently
    shared = [i for i, e in enc.items() if all(x[0] == e[0][0] for x in e)]
    own = [i for i in range(len(items)) if i not in set(shared)]
    for i, s in zip(own, score_items(model, [items[i] for i in own], hooks, batch_size, False, desc, bos) if own else [],
                    strict=True):
        out[i] = s
    order = sorted(shared, key=lambda i: -len(enc[i][0][0]))
    tracker = tracker_for(model)
    bar = tqdm(total=len(items), desc=desc, disable=not progress, leave=False, unit="item")
    # `last` is the final token of context + answer, which scoring never feeds (as in score_items)
    with steer(model, hooks or []), tracker.final_token_unfed(), bar:
        bar.update(len(own))
        for k in range(0, len(order), batch_size):
            batch = order[k: k + batch_size]
            tokens, mask = _left_padded([enc[i][0][0] for i in batch], pad_id, device)
            tracker.reset()  # a new prompt
            logits, cache = model(tokens, attention_mask=mask, return_type="logits_and_cache")
            first = logits[:, -1].float().log_softmax(-1)
            rows = [(r, j) for r, i in enumerate(batch) for j in range(len(items[i].choices))]
            rest = [(r, j) for r, j in rows if len(enc[batch[r]][j][1]) > 1]
            later: dict[tuple[int, int], torch.Tensor] = {}
            if rest:
                A = max(len(enc[batch[r]][j][1]) - 1 for r, j in rest)
                cont = torch.full((len(rest), A), pad_id, dtype=torch.long)
                cmask = torch.zeros_like(cont)
                for q, (r, j) in enumerate(rest):
                    fed = enc[batch[r]][j][1][:-1]
                    cont[q, : len(fed)] = torch.tensor(fed)
                    cmask[q, : len(fed)] = 1
                idx = torch.tensor([r for r, _ in rest], device=tokens.device)
                cache.reorder_cache(idx)  # one cache row per choice that has more tokens
                full_mask = torch.cat([mask[idx], cmask.to(device)], dim=1)
                lp = model(cont.to(device), attention_mask=full_mask, past_key_values=cache,
                           return_type="logits").float().log_softmax(-1)
                for q, key in enumerate(rest):
                    later[key] = lp[q]
            for r, i in enumerate(batch):
                lps, ntok, greedy = [], [], []
                for j in range(len(items[i].choices)):
                    c = enc[i][j][1]
                    total = float(first[r, c[0]])
                    ids = [int(first[r].argmax())]
                    if len(c) > 1:
                        lp = later[(r, j)]
                        total += float(lp[torch.arange(len(c) - 1), torch.tensor(c[1:])].sum())
                        ids += lp[: len(c) - 1].argmax(-1).tolist()
                    lps.append(total)
                    ntok.append(len(c))
                    greedy.append(tok.decode(ids, skip_special_tokens=True))
                out[i] = ChoiceScores(tuple(lps), tuple(ntok), tuple(len(ch.strip()) or 1 for ch in items[i].choices),
                                      tuple(greedy))
            bar.update(len(batch))
    return out  # type: ignore[return-value]
