"""Contrast sets come from the train split, with the desirable side positive."""

from __future__ import annotations

import pytest

from tl_steer import SteeringError
from tl_steer.eval.pairs import build_contrast, contrast_from_items
from tl_steer.eval.splits import load_split
from tl_steer.eval.tasks import MCItem, load_task


def test_pairs_cycle_the_shorter_side():
    item = MCItem("Q:", (" t1", " f1", " f2", " f3"), (1, 0, 0, 0))
    cs = contrast_from_items("truth", [item])
    assert cs.positive == ("Q: t1",) * 3 and cs.negative == ("Q: f1", "Q: f2", "Q: f3") and cs.paired
    assert len(contrast_from_items("truth", [item], per_item=2).positive) == 2
    sub = contrast_from_items("truth", [item] * 10, max_pairs=5, seed=3)
    assert len(sub.positive) == 5 and sub == contrast_from_items("truth", [item] * 10, max_pairs=5, seed=3)


def test_balance_key_equalises_answers_on_both_sides():
    yes_no = (" Yes", " No")
    items = [MCItem(f"S{i}:", yes_no, (0, 1)) for i in range(7)] + [MCItem(f"H{i}:", yes_no, (1, 0)) for i in range(3)]
    raw = contrast_from_items("tox", items)
    assert sum(p.endswith(" No") for p in raw.positive) == 7  # confounded: desirable mostly says "No"
    bal = contrast_from_items("tox", items, balance_key=lambda it, j: it.choices[j], seed=1)
    assert len(bal.positive) == 6 and bal.paired
    for side in (bal.positive, bal.negative):
        assert sum(t.endswith(" No") for t in side) == 3 and sum(t.endswith(" Yes") for t in side) == 3
    assert bal == contrast_from_items("tox", items, balance_key=lambda it, j: it.choices[j], seed=1)
    # max_pairs keeps the balance (mirrored pairs are drawn together); before, a random subset of the balanced
    # pairs could leave 21 vs 19 (see docs/adding-a-task.md's SST-2 cloze)
    for cap in (2, 3, 4, 5):
        for seed in range(5):
            sub = contrast_from_items("tox", items, balance_key=lambda it, j: it.choices[j], seed=seed, max_pairs=cap)
            assert len(sub.positive) == 2 * (cap // 2)
            assert sum(t.endswith(" No") for t in sub.positive) == sum(t.endswith(" No") for t in sub.negative)
    with pytest.raises(SteeringError, match="after answer balancing"):
        contrast_from_items("tox", items[:7], balance_key=lambda it, j: it.choices[j])


@pytest.mark.data
def test_task_contrast_sets_are_answer_balanced(data_dir):
    tox = build_contrast("toxigen", data_dir, limit=200)
    assert sum(p.endswith(" No") for p in tox.positive) == sum(n.endswith(" No") for n in tox.negative) > 10
    from tl_steer.eval.splits import select
    from tl_steer.eval.tasks import get_task

    items = select(load_task("bbq", data_dir), "bbq", "train", 200)
    key = get_task("bbq").balance_key
    unknown = {it.context(j) + it.choices[j] for it in items for j in range(3) if key(it, j)}
    bbq = build_contrast("bbq", data_dir, limit=200)
    assert sum(p in unknown for p in bbq.positive) == sum(n in unknown for n in bbq.negative) > 10


def test_per_choice_contexts():
    item = MCItem("", (" ends.", " ends."), (0, 1), prompts=("A so B", "A so C"))
    cs = contrast_from_items("wg", [item])
    assert cs.positive == ("A so C ends.",) and cs.negative == ("A so B ends.",)


@pytest.mark.data
def test_build_contrast_uses_train_only(data_dir):
    cs = build_contrast("toxigen", data_dir, limit=20, balance=False)
    items = load_task("toxigen", data_dir)
    train = [items[i] for i in load_split("toxigen", len(items))["train"][:20]]
    assert cs.attribute == "toxicity" and len(cs.positive) == 20
    # a hateful statement's positive text says "Yes"
    assert all(p.endswith(" Yes") == it.meta["hate"] for p, it in zip(cs.positive, train, strict=True))
    with pytest.raises(SteeringError, match="never test"):
        build_contrast("toxigen", data_dir, split="test")
