"""The committed split files are seeded, disjoint, complete, and match the data sizes."""

from __future__ import annotations

import json

import pytest

from tl_steer import SteeringError
from tl_steer.eval.splits import SPLIT_DIR, load_split, make_split, select, write_split
from tl_steer.eval.tasks import TASKS


def test_make_split_is_seeded_disjoint_and_complete():
    a, b = make_split(817, seed=0), make_split(817, seed=0)
    assert a == b
    assert make_split(817, seed=1) != a
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (327, 82, 408)
    assert sorted(a["train"] + a["val"] + a["test"]) == list(range(817))


@pytest.mark.parametrize("pool", sorted({t.pool for t in TASKS.values()}))
def test_committed_file_matches_its_seed(pool):
    doc = json.loads((SPLIT_DIR / f"{pool}.json").read_text())
    assert set(doc) == {"pool", "n", "seed", "fractions", "train", "val", "test"}, "indices only, never data"
    again = make_split(doc["n"], doc["seed"], doc["fractions"])
    assert {k: doc[k] for k in ("train", "val", "test")} == again


def test_truthfulqa_is_40_10_50():
    doc = load_split("truthfulqa", 817)
    assert doc["fractions"] == [0.4, 0.1, 0.5]


def test_select_and_errors(tmp_path):
    write_split("toy", 10, split_dir=tmp_path)
    items = list("abcdefghij")
    test = select(items, "toy", "test", split_dir=tmp_path)
    train = select(items, "toy", "train", split_dir=tmp_path)
    assert len(test) == 5 and not set(test) & set(train)
    assert select(items, "toy", "test", limit=2, split_dir=tmp_path) == test[:2]
    assert select(items, "toy", "all", limit=3) == ["a", "b", "c"]
    with pytest.raises(SteeringError, match="made for 10 items but the 'toy' data has 9"):
        select(items[:9], "toy", "test", split_dir=tmp_path)
    with pytest.raises(SteeringError, match="no split file"):
        select(items, "other", "test", split_dir=tmp_path)
    with pytest.raises(SteeringError, match="split must be one of"):
        select(items, "toy", "dev", split_dir=tmp_path)
    with pytest.raises(SteeringError, match="fractions"):
        make_split(10, fractions=(0.5, 0.5, 0.5))
