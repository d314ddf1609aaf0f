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
sides. Each task declares its key as ``TaskSpec.balance_key`` (ToxiGen: the verdict; BBQ: "is the unknown answer").
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import SteeringError, check_int
from ..pairs import ContrastSet
from .splits import select
from .tasks import TASKS, MCItem, get_task, load_task

BalanceKey = Callable[[MCItem, int], Hashable]

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


def _balanced_subset(keys: list[tuple[Hashable, Hashable]], cap: int, seed: int) -> list[int]:
    """At most ``cap`` indices of an already balanced list in which each pair type ``(a, b)`` still occurs as often
    as its mirror ``(b, a)``: a pair of mirrored types is one unit of two (seeded order)."""
    groups: dict[tuple[Hashable, Hashable], list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    units: list[list[int]] = []
    for (a, b), idx in groups.items():
        if a == b:
            units.extend([i] for i in idx)
        elif repr(a) < repr(b):  # each mirrored couple once
            units.extend([i, j] for i, j in zip(idx, groups.get((b, a), []), strict=False))
    order = torch.randperm(len(units), generator=torch.Generator().manual_seed(seed)).tolist()
    keep: list[int] = []
    for u in order:
        if len(keep) + len(units[u]) <= cap:
            keep.extend(units[u])
    return sorted(keep)


def _subsample(texts: list[str], groups: list[Hashable], cap: int | None, seed: int) -> tuple[list[str], list[Hashable]]:
    if cap is None or len(texts) <= cap:
        return texts, groups
    keep = torch.randperm(len(texts), generator=torch.Generator().manual_seed(seed))[:cap].sort().values.tolist()
    return [texts[i] for i in keep], [groups[i] for i in keep]


def reference_contrast(
    task: str, attribute: str, items: Sequence[MCItem], max_per_side: int | None = None, seed: int = 0,
    reference_polarity: bool = False,
) -> ContrastSet:
    """Unpaired texts built as the MAT-Steer reference builds them (``utils.load_task_dataset`` at HEAD 92de352).

    * TruthfulQA: every MC2 answer, ``"Q: {question} A: {answer}"``; true answers positive, false negative.
    * ToxiGen: the statement itself; non-toxic positive, toxic negative. The reference takes ``label == 1`` as
      positive, and in ToxiGen label 1 (or ``toxicity_score > 0.5``) is the *toxic* side:
      ``reference_polarity=True`` reproduces that (we believe it is a bug).
    * BBQ: ``"Q: {context} {question} A: {answer}"``, the correct answer positive and the two wrong ones negative.

    ``groups`` hold each text's item id (one question's answers stay together in held-out splits).
    """
    make = get_task(task).reference_texts
    if make is None:
        with_texts = [name for name, spec in TASKS.items() if spec.reference_texts is not None]
        raise SteeringError(f"reference-style contrast sets exist for {', '.join(with_texts)}, not {task!r}")
    pos: list[str] = []
    neg: list[str] = []
    gp: list[Hashable] = []
    gn: list[Hashable] = []
    for i, it in enumerate(items):
        gid = it.meta.get("id", i)
        texts = make(it, reference_polarity)
        for text, lab in texts:
            (pos if lab == 1 else neg).append(text)
            (gp if lab == 1 else gn).append(gid)
    pos, gp = _subsample(pos, gp, max_per_side, seed)
    neg, gn = _subsample(neg, gn, max_per_side, seed + 1)
    if not pos or not neg:
        raise SteeringError(f"no reference-style texts for {attribute!r}: {len(pos)} positive, {len(neg)} negative")
    return ContrastSet(attribute, tuple(pos), tuple(neg), (tuple(gp), tuple(gn)), pairing=False)


def contrast_from_items(
    attribute: str, items: Sequence[MCItem], per_item: int | None = None, max_pairs: int | None = None, seed: int = 0,
    balance_key: BalanceKey | None = None,
) -> ContrastSet:
    """Paired [`ContrastSet`][tl_steer.pairs.ContrastSet] (positive = prompt + a correct choice, negative = prompt + a wrong one).

    With ``balance_key``, pairs are subsampled so that each key occurs equally often on both sides.
    """
    pos: list[str] = []
    neg: list[str] = []
    ids: list[Hashable] = []
    keys: list[tuple[Hashable, Hashable]] = []
    for n_item, it in enumerate(items):
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
            ids.append(it.meta.get("id", n_item))
            if balance_key is not None:
                keys.append((balance_key(it, t), balance_key(it, f)))
    if balance_key is not None:
        keep = _balance(keys, seed)
        pos, neg, ids = [pos[i] for i in keep], [neg[i] for i in keep], [ids[i] for i in keep]
    if not pos:
        raise SteeringError(
            f"no contrastive pairs for {attribute!r}: no item has both a correct and a wrong choice"
            + (" (after answer balancing)" if balance_key is not None else "")
        )
    check_int(max_pairs, "max_pairs", 1, optional=True)
    if max_pairs is not None and len(pos) > max_pairs:
        if balance_key is not None:  # keep the balance: mirrored pairs are taken together
            keys = [keys[i] for i in keep]
            keep = _balanced_subset(keys, max_pairs, seed)
        else:
            keep = torch.randperm(len(pos), generator=torch.Generator().manual_seed(seed))[:max_pairs].sort().values.tolist()
        pos, neg, ids = [pos[i] for i in keep], [neg[i] for i in keep], [ids[i] for i in keep]
    return ContrastSet(attribute, tuple(pos), tuple(neg), (tuple(ids), tuple(ids)), pairing=True)


def build_contrast(
    task: str,
    data_dir: str | Path | None = None,
    split: str = "train",
    limit: int | None = None,
    per_item: int | None = 4,
    max_pairs: int | None = None,
    seed: int = 0,
    balance: bool = True,
    style: str = "balanced",
    reference_polarity: bool = False,
    split_dir: str | Path | None = None,
    **options: Any,
) -> ContrastSet:
    """The contrast set of ``task`` from its ``split`` (``"train"``: never fit on val/test), named by its attribute.

    ``style="balanced"`` (default): pairs of the task's own prompt with a correct vs a wrong answer, answer-balanced
    (``balance``, the task's ``TaskSpec.balance_key``). ``style="reference"``: unpaired texts built as the MAT-Steer
    reference builds them ([`reference_contrast()`][tl_steer.eval.pairs.reference_contrast]; ``max_pairs`` caps each side). Every text carries its item
    id in ``groups``. ``split_dir``: where the pool's split file is (default the package's).
    """
    if style not in ("balanced", "reference"):
        raise SteeringError(f"style must be 'balanced' or 'reference', got {style!r}")
    for name, v in (("max_pairs", max_pairs), ("limit", limit), ("per_item", per_item)):
        check_int(v, f"build_contrast: {name}", 1, optional=True)
    if split == "test":
        raise SteeringError("contrast sets are for fitting: build them from the train split (or val), never test")
    spec = get_task(task)
    items = select(load_task(task, data_dir, **options), spec.pool, split, limit, split_dir)
    if style == "reference":
        return reference_contrast(spec.name, spec.attribute, items, max_pairs, seed, reference_polarity)
    key = spec.balance_key if balance else None
    return contrast_from_items(spec.attribute, items, per_item=per_item, max_pairs=max_pairs, seed=seed, balance_key=key)
