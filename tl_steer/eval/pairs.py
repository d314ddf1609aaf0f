"""Contrastive sets for fitting, built from a task's *train* split only.

For every item, each correct choice is paired with an incorrect one (``prompt + correct`` is the positive,
desirable text; ``prompt + incorrect`` the negative), cycling through the shorter side, so an item with ``t`` true
and ``f`` false choices gives ``max(t, f)`` pairs (capped by ``per_item``). TruthfulQA: true vs false answers;
ToxiGen: the right vs wrong verdict on a statement; BBQ: the correct (unbiased, often "unknown") answer vs each
wrong one. The set is paired (same length on both sides) and, with ``max_pairs``, a seeded random subset.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import SteeringError
from ..pairs import ContrastSet
from .splits import select
from .tasks import MCItem, get_task, load_task


def contrast_from_items(
    attribute: str, items: Sequence[MCItem], per_item: int | None = None, max_pairs: int | None = None, seed: int = 0
) -> ContrastSet:
    """Paired :class:`ContrastSet` (positive = prompt + a correct choice, negative = prompt + a wrong one)."""
    pos: list[str] = []
    neg: list[str] = []
    for it in items:
        true = [j for j, lab in enumerate(it.labels) if lab == 1]
        false = [j for j, lab in enumerate(it.labels) if lab == 0]
        if not false:
            continue
        k = max(len(true), len(false))
        if per_item is not None:
            k = min(k, per_item)
        for m in range(k):
            t, f = true[m % len(true)], false[m % len(false)]
            pos.append(it.context(t) + it.choices[t])
            neg.append(it.context(f) + it.choices[f])
    if not pos:
        raise SteeringError(f"no contrastive pairs for {attribute!r}: no item has both a correct and a wrong choice")
    if max_pairs is not None and len(pos) > max_pairs:
        keep = torch.randperm(len(pos), generator=torch.Generator().manual_seed(seed))[:max_pairs].sort().values.tolist()
        pos, neg = [pos[i] for i in keep], [neg[i] for i in keep]
    return ContrastSet(attribute, tuple(pos), tuple(neg))


def build_contrast(
    task: str,
    data_dir: str | Path | None = None,
    split: str = "train",
    limit: int | None = None,
    per_item: int | None = 4,
    max_pairs: int | None = None,
    seed: int = 0,
    **options: Any,
) -> ContrastSet:
    """The contrast set of ``task`` from its ``split`` (``"train"``: never fit on val/test), named by its attribute."""
    if split == "test":
        raise SteeringError("contrast sets are for fitting: build them from the train split (or val), never test")
    spec = get_task(task)
    items = select(load_task(task, data_dir, **options), spec.pool, split, limit)
    return contrast_from_items(spec.attribute, items, per_item=per_item, max_pairs=max_pairs, seed=seed)
