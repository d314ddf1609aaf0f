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


def test_per_choice_contexts():
    item = MCItem("", (" ends.", " ends."), (0, 1), prompts=("A so B", "A so C"))
    cs = contrast_from_items("wg", [item])
    assert cs.positive == ("A so C ends.",) and cs.negative == ("A so B ends.",)


@pytest.mark.data
def test_build_contrast_uses_train_only(data_dir):
    cs = build_contrast("toxigen", data_dir, limit=20)
    items = load_task("toxigen", data_dir)
    train = [items[i] for i in load_split("toxigen", len(items))["train"][:20]]
    assert cs.attribute == "toxicity" and len(cs.positive) == 20
    # a hateful statement's positive text says "Yes"
    assert all(p.endswith(" Yes") == it.meta["hate"] for p, it in zip(cs.positive, train, strict=True))
    with pytest.raises(SteeringError, match="never test"):
        build_contrast("toxigen", data_dir, split="test")
