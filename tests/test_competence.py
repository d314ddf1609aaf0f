"""benchmarks/competence.py on the tiny model: one row per formulation with its constant-answer controls, the best
formulation per dataset marked, resumable."""

from __future__ import annotations

import json

import pytest
from bench_import import load_benchmark


@pytest.mark.data
def test_competence_quick(tmp_path, data_dir):
    comp = load_benchmark("competence")
    args = ["--models", "tiny", "--tasks", "copa", "sadi_copa", "toxigen", "--limit", "12", "--out", str(tmp_path),
            "--data-dir", str(data_dir)]
    assert comp.main(args) == 0
    rows = json.loads((tmp_path / "competence.json").read_text())
    assert {r["task"] for r in rows} == {"copa", "sadi_copa", "toxigen"}
    for r in rows:
        assert 0.5 <= r["majority"] <= 1.0  # the best constant answer (or chance) of a 2-choice sample
        assert r["margin"] == pytest.approx(r["acc"] - r["majority"])
        assert r["competent"] == (r["low"] > r["majority"])
    copa = {r["task"]: r for r in rows if r["pool"] == "copa"}
    # the same items, two formulations: the letter prompt has a constant answer ('A' or 'B'), the cloze one only chance
    assert copa["copa"]["majority_answer"] == "random" and copa["copa"]["majority"] == 0.5
    assert copa["sadi_copa"]["majority_answer"] in ("'A'", "'B'") and copa["sadi_copa"]["balanced"] is not None
    # the letter format is scored again under its other option order (the cloze one needs none): the order-averaged
    # acc is each item's acc averaged over both orders, so the mean of the two cells' acc
    assert copa["copa"]["order_avg"] is None
    assert copa["sadi_copa"]["orders"] == 2
    both = [r for folder in (tmp_path / "cells", tmp_path / "cells" / "rotate1")
            for r in comp.read_results(folder) if r.task == "sadi_copa"]
    assert len(both) == 2 and both[0].item_ids == both[1].item_ids
    assert copa["sadi_copa"]["order_avg"] == pytest.approx(sum(r.metrics["acc"].value for r in both) / 2)
    md = (tmp_path / "competence.md").read_text()
    assert "2 orders" in md
    assert md.count("**best**") == 2  # one per dataset
    stamp = {str(p): p.stat().st_mtime_ns for p in (tmp_path / "cells").rglob("*.json")}
    assert comp.main(args) == 0  # resumes: no cell recomputed
    assert {str(p): p.stat().st_mtime_ns for p in (tmp_path / "cells").rglob("*.json")} == stamp
