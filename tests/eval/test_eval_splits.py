"""The committed split files are seeded, disjoint, complete, and match the data sizes."""

from __future__ import annotations

import json

import pytest

from tl_steer import SteeringError
from tl_steer.eval.splits import SPLIT_DIR, load_split, make_split, select, write_split
from tl_steer.eval.tasks import TASKS, load_task


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


@pytest.mark.data
def test_the_committed_seal_holds_and_is_disjoint_from_what_was_scored(data_dir):
    """The sealed items are test[400:] of each pool (never scored by earlier runs), their hash matches the data, every
    formulation of a pool sees the same sealed rows, and pools too small to seal say why."""
    from tl_steer.eval.splits import SEAL_FILE, SEAL_START, sealed_indices

    doc = json.loads(SEAL_FILE.read_text())
    assert set(doc["pools"]) == {p.stem for p in SPLIT_DIR.glob("*.json") if p.stem != "sealed"}
    for pool, entry in doc["pools"].items():
        split = load_split(pool)
        if not entry["indices"]:
            assert "counts as seen" in entry["why"] and len(split["test"]) - SEAL_START < 100
            with pytest.raises(SteeringError, match="no sealed items"):
                sealed_indices(pool, data_dir)
            continue
        idx = sealed_indices(pool, data_dir)  # checks the hash
        assert idx == split["test"][SEAL_START:] and len(idx) >= 100
        assert not set(idx) & set(split["test"][:SEAL_START] + split["train"] + split["val"])
    harness = select(load_task("storycloze", data_dir), "storycloze", "sealed", 5, data_dir=data_dir)
    reference = select(load_task("sadi_storycloze", data_dir), "storycloze", "sealed", 5, data_dir=data_dir)
    assert [it.meta["id"] for it in harness] == [it.meta["id"] for it in reference]


@pytest.mark.data
def test_a_changed_seal_is_refused(tmp_path, data_dir):
    from tl_steer.eval.splits import SEAL_FILE, sealed_indices, write_seal

    doc = json.loads(SEAL_FILE.read_text())
    doc["pools"]["winogrande"]["indices"] = doc["pools"]["winogrande"]["indices"][1:]  # one item dropped
    bad = tmp_path / "sealed.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(SteeringError, match="no longer match their hash"):
        sealed_indices("winogrande", data_dir, path=bad)
    with pytest.raises(SteeringError, match="exists; a seal is written once"):
        write_seal(["winogrande"], data_dir, path=bad)
    assert json.loads(bad.read_text()) == doc  # untouched
