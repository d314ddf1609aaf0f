"""Choose hyperparameters (layer, K, strength) on a *validation* split.

``sweep(build, grid, score)`` tries every combination in ``grid``: ``build(params) -> HookList`` makes the hooks,
``score(hooks) -> float`` evaluates them on validation data, and the best combination wins.
``sweep_strength(fitted, model, score)`` sweeps a fitted method's strength over its registered grid; with a
[`logprob_margin_scorer()`][tl_steer.sweep.logprob_margin_scorer] it runs all strengths in one batch (per-row strengths).

Never pass a scorer that reads the test split: the numbers you then report on test would be optimistically
biased. (The SADI reference code picks its number of elements and strength by the best test score; tl_steer
does not.) Split your data with [`train_val_split()`][tl_steer.sweep.train_val_split] (fit on train, sweep on val), and evaluate the chosen
setting once on test afterwards.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ._types import TransformerBridge
from .aligned import aligned_logprobs, continuation_sum, encode, pad_token_id
from .core import HookList, steer
from .errors import SteeringError
from .functional import split_indices
from .pairs import ContrastSet


@dataclass(frozen=True)
class SweepResult:
    """Every tried setting with its validation score (``table``), and the best one."""

    table: list[dict[str, Any]]
    best_params: dict[str, Any]
    best_score: float
    maximize: bool = True

    def to_pandas(self) -> Any:
        """The sweep as a pandas DataFrame: one row per parameter setting, with its score."""
        import pandas as pd

        return pd.DataFrame(self.table)


def sweep(
    build: Callable[[dict[str, Any]], HookList],
    grid: Mapping[str, Sequence[Any]],
    score: Callable[[HookList], float],
    *,
    maximize: bool = True,
    progress: bool = False,
) -> SweepResult:
    """Grid search: ``score(build(params))`` for every ``params`` in the product of ``grid``.

    ``score`` must evaluate on validation data only. Ties keep the first setting in grid order; settings whose score
    is NaN are kept in the table but never chosen.
    """
    if not grid or any(len(v) == 0 for v in grid.values()):
        raise SteeringError(f"sweep grid needs at least one value per parameter, got {dict(grid)!r}")
    keys = list(grid)
    table: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any]] | None = None
    combos = list(itertools.product(*(grid[k] for k in keys)))
    if progress:
        from tqdm.auto import tqdm

        combos = tqdm(combos, desc="sweep", leave=False)
    for values in combos:
        params = dict(zip(keys, values, strict=True))
        s = float(score(build(params)))
        table.append({**params, "score": s})
        if math.isnan(s):
            continue
        if best is None or (s > best[0] if maximize else s < best[0]):
            best = (s, params)
    if best is None:
        raise SteeringError("every setting in the sweep scored NaN; check the scorer")
    return SweepResult(table, best[1], best[0], maximize)


def sweep_strength(
    fitted: Any,
    model: TransformerBridge,
    score: Callable[[HookList], float],
    grid: Sequence[float] | None = None,
    positions: Any = None,
    *,
    maximize: bool = True,
    progress: bool = False,
) -> SweepResult:
    """Choose a fitted method's strength on validation data: its registered grid ([`MethodSpec`][tl_steer.registry.MethodSpec]
    ``grid``) unless ``grid`` is given; ``positions`` defaults to the method's registered scope."""
    from . import registry

    spec = registry.get(fitted.method) if registry.resolve(fitted.method) else None
    if grid is None:
        if spec is None:
            raise SteeringError(f"{type(fitted).__name__} ({fitted.method!r}) has no registered grid; pass grid=[...]")
        grid = spec.grid
    if positions is None and spec is not None:
        positions = spec.default_positions
    if isinstance(score, MarginScorer) and score.model is model and len(set(score.positive)) == 1 \
            and len(set(score.negative)) == 1 and len(set(float(g) for g in grid)) == len(grid):
        # one batch, each row at its own strength, instead of one pass per strength (the same numbers; tested)
        values = margin_sweep(fitted, model, score.prompts, score.positive[0], score.negative[0], list(grid), positions)
        table = [{"strength": g, "score": values[float(g)]} for g in grid]
        pick = max if maximize else min
        best = pick(table, key=lambda row: row["score"])  # first in grid order on ties, as sweep()
        return SweepResult(table, {"strength": best["strength"]}, best["score"], maximize)
    return sweep(lambda p: fitted.hooks(model, positions=positions, strength=p["strength"]), {"strength": list(grid)},
                 score, maximize=maximize, progress=progress)


@torch.no_grad()
def margin_sweep(
    fitted: Any,
    model: TransformerBridge,
    prompts: Sequence[str],
    positive: str,
    negative: str,
    strengths: Sequence[float],
    positions: Any = None,
    batch_size: int = 32,
    per_row: bool = True,
    prepend_bos: bool | None = None,
) -> dict[float, float]:
    """Mean ``log p(positive | prompt) - log p(negative | prompt)`` at each strength, on validation prompts.

    With ``per_row`` (default) every strength is one block of rows in the same batches, each row steered at its own
    strength (a ``(batch,)`` strength tensor), so N strengths cost about one pass over ``N x`` the rows instead of N
    separate passes; ``per_row=False`` runs the strengths one after another (same numbers, for comparison).
    Position scopes see the prompt boundary as in generation (``tracker.prompt_length``). Rows are encoded and laid
    out as ``evaluate`` scores items ([`tl_steer.aligned`][tl_steer.aligned]: same BOS rule, same tokenisation of
    context and continuation), so validation scores and test scores mean the same thing.
    """
    from . import registry

    if positions is None and registry.resolve(fitted.method):
        positions = registry.get(fitted.method).default_positions
    # the scorer's encoding and layout (tl_steer.aligned), so validation is scored as evaluate scores the test set
    enc = [[encode(model, p, c, prepend_bos) for c in (positive, negative)] for p in prompts]
    rows = [(i, j) for i in range(len(prompts)) for j in range(2)]  # (prompt, continuation)
    pad = pad_token_id(model)

    def run(block: list[tuple[float, int, int]]) -> Tensor:
        s = torch.tensor([b[0] for b in block])
        hooks = fitted.hooks(model, positions=positions, strength=s if len(set(s.tolist())) > 1 else float(s[0]))
        seqs = [(enc[i][j][0], enc[i][j][1][:-1]) for _, i, j in block]
        with steer(model, hooks):
            lp = aligned_logprobs(model, seqs, pad)
        return torch.stack([continuation_sum(lp[r], enc[i][j][1]) for r, (_, i, j) in enumerate(block)]).cpu()

    plan = [(float(st), i, j) for st in strengths for (i, j) in rows]
    chunks = ([plan[k: k + batch_size] for k in range(0, len(plan), batch_size)] if per_row else
              [blk[k: k + batch_size] for st in strengths for blk in [[p for p in plan if p[0] == float(st)]]
               for k in range(0, len(blk), batch_size)])
    values: dict[float, list[float]] = {float(st): [0.0] * len(prompts) for st in strengths}
    for chunk in chunks:
        for (st, i, j), v in zip(chunk, run(chunk).tolist(), strict=True):
            values[st][i] += v if j == 0 else -v
    return {st: sum(v) / len(v) for st, v in values.items()}


def train_val_split(contrast: ContrastSet, val_fraction: float = 0.2, seed: int = 0) -> tuple[ContrastSet, ContrastSet]:
    """Seeded split of a contrast set (pairs stay together when it is paired)."""
    ptr, pva, ntr, nva = split_indices(len(contrast.positive), len(contrast.negative), val_fraction, seed, contrast.paired)
    pick = lambda side, idx: tuple(side[i] for i in sorted(idx.tolist()))  # noqa: E731
    return (
        ContrastSet(contrast.attribute, pick(contrast.positive, ptr), pick(contrast.negative, ntr)),
        ContrastSet(contrast.attribute, pick(contrast.positive, pva), pick(contrast.negative, nva)),
    )


@torch.no_grad()
def continuation_logprob(
    model: TransformerBridge, prompts: Sequence[str], continuations: Sequence[str], hooks: HookList = (),
    prepend_bos: bool | None = None,
) -> Tensor:
    """Sum of log-probs of ``continuations[i]`` after ``prompts[i]`` under ``hooks`` (one value per prompt).

    Each prompt + continuation runs as one teacher-forced forward inside ``tracker.prompt_length(P)``, so position
    scopes see the prompt boundary exactly as in generation (``last_prompt`` edits the prompt's last token,
    ``generated`` the continuation's tokens): for a causal model the logits equal those of feeding the continuation
    one token at a time. Encoded as ``evaluate`` encodes items ([`tl_steer.aligned.encode()`][tl_steer.aligned.encode]).
    """
    if len(prompts) != len(continuations):
        raise SteeringError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    out = []
    with steer(model, list(hooks)):
        for prompt, cont in zip(prompts, continuations, strict=True):
            ctx, ids = encode(model, prompt, cont, prepend_bos)
            out.append(continuation_sum(aligned_logprobs(model, [(ctx, ids[:-1])])[0], ids))
    return torch.stack(out).cpu()


@dataclass(frozen=True)
class MarginScorer:
    """Mean ``log p(positive | prompt) - log p(negative | prompt)`` under the hooks it is called with.

    [`sweep_strength()`][tl_steer.sweep.sweep_strength] recognises it and sweeps all strengths in one batch with
    per-row strengths ([`margin_sweep()`][tl_steer.sweep.margin_sweep]) when the two continuations are single
    strings."""

    model: Any
    prompts: tuple[str, ...]
    positive: tuple[str, ...]
    negative: tuple[str, ...]

    def __call__(self, hooks: HookList) -> float:
        lp = continuation_logprob(self.model, self.prompts, self.positive, hooks)
        ln = continuation_logprob(self.model, self.prompts, self.negative, hooks)
        return float((lp - ln).mean())


def logprob_margin_scorer(
    model: TransformerBridge, prompts: Sequence[str], positive: Sequence[str] | str, negative: Sequence[str] | str
) -> MarginScorer:
    """A validation scorer: mean ``log p(positive | prompt) - log p(negative | prompt)`` under the hooks."""
    pos = [positive] * len(prompts) if isinstance(positive, str) else list(positive)
    neg = [negative] * len(prompts) if isinstance(negative, str) else list(negative)
    return MarginScorer(model, tuple(prompts), tuple(pos), tuple(neg))
