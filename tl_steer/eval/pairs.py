"""Contrastive sets for fitting, built from a task's *train* split only.

For every item, each correct choice is paired with an incorrect one (``prompt + correct`` is the positive,
desirable text; ``prompt + incorrect`` the negative), cycling through the shorter side, so an item with ``t`` true
and ``f`` false choices gives ``max(t, f)`` pairs (capped by ``per_item``). TruthfulQA: true vs false answers;
ToxiGen: the right vs wrong verdict on a statement; BBQ: the correct (unbiased, often "unknown") answer vs each
wrong one. The set is paired (same length on both sides) and, with ``max_pairs``, a seeded random subset.

**Answer balance.** A contrast set whose desirable side says one answer more often than the undesirable side
teaches "say that answer", not the attribute: ToxiGen's train split is mostly non-hateful, so most desirable texts
end in " No"; BBQ's desirable side says "unknown" twice as often as its undesirable side. ``balance_key(item,
choice) -> key`` names the answer feature that must not differ between the sides; pairs of key type ``(a, b)`` are
then subsampled (seeded) to as many as their mirror type ``(b, a)``, so every key occurs equally often on both
sides. Tasks declare their key in :data:`BALANCE_KEYS` (ToxiGen: the verdict; BBQ: "is the unknown answer").
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import SteeringError
from ..pairs import ContrastSet
from .splits import select
from .tasks import MCItem, get_task, load_task

BalanceKey = Callable[[MCItem, int], Hashable]

#: per task, the answer feature that must occur equally often on the desirable and the undesirable side
BALANCE_KEYS: dict[str, BalanceKey] = {
    "toxigen": lambda it, j: it.choices[j],  # " Yes" / " No"
    "bbq": lambda it, j: j == it.meta.get("unknown"),  # "cannot be determined"-style answer or not
}


def _balance(keys: list[tuple[Hashable, Hashable]], seed: int) -> list[int]:
    """Indices of a subset in which every pair type ``(a, b)`` is as frequent as its mirror ``(b, a)``."""
    groups: dict[tuple[Hashable, Hashable], list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    g = torch.Generator().manual_seed(seed)
    keep: list[int] = []
    for (a, b), idx in groups.items():
        n = len(idx) if a == b else min(len(idx), len(groups.get((b, a), [])))
        order = torch.randperm(len(idx), generator=g)[:n].tolist()
        keep.extend(idx[i] for i in order)
    return sorted(keep)


def contrast_from_items(
    attribute: str, items: Sequence[MCItem], per_item: int | None = None, max_pairs: int | None = None, seed: int = 0,
    balance_key: BalanceKey | None = None,
) -> ContrastSet:
    """Paired :class:`ContrastSet` (positive = prompt + a correct choice, negative = prompt + a wrong one).

    With ``balance_key``, pairs are subsampled so that each key occurs equally often on both sides.
    """
    pos: list[str] = []
    neg: list[str] = []
    keys: list[tuple[Hashable, Hashable]] = []
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
            if balance_key is not None:
                keys.append((balance_key(it, t), balance_key(it, f)))
    if balance_key is not None:
        keep = _balance(keys, seed)
        pos, neg = [pos[i] for i in keep], [neg[i] for i in keep]
    if not pos:
        raise SteeringError(
            f"no contrastive pairs for {attribute!r}: no item has both a correct and a wrong choice"
            + (" (after answer balancing)" if balance_key is not None else "")
        )
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
    balance: bool = True,
    **options: Any,
) -> ContrastSet:
    """The contrast set of ``task`` from its ``split`` (``"train"``: never fit on val/test), named by its attribute.

    ``balance`` (default) applies the task's :data:`BALANCE_KEYS` entry, if it has one.
    """
    if split == "test":
        raise SteeringError("contrast sets are for fitting: build them from the train split (or val), never test")
    spec = get_task(task)
    items = select(load_task(task, data_dir, **options), spec.pool, split, limit)
    key = BALANCE_KEYS.get(spec.pool) if balance else None
    return contrast_from_items(spec.attribute, items, per_item=per_item, max_pairs=max_pairs, seed=seed, balance_key=key)
