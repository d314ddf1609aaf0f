"""benchmarks/headline.py: the equal-budget grid search (the same number of points for every method, extended while
val still rises, an edge flagged) and a tiny end-to-end run that selects on val and scores the sealed split once."""

from __future__ import annotations

import json
import shutil

import pytest
from bench_import import load_benchmark


def test_grid_search_extends_only_while_val_rises():
    hl = load_benchmark("headline")
    calls = []

    def rising(s):
        calls.append(s)
        return s

    s, points, edge = hl.grid_search(rising, (1.0, 2.0, 4.0, 8.0, 16.0))
    assert [p for p, _ in points] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0] and s == 32.0 and edge  # 4 + 2 doublings
    s, points, edge = hl.grid_search(lambda s: -abs(s - 2.0), (1.0, 2.0, 4.0, 8.0))
    assert [p for p, _ in points] == [1.0, 2.0, 4.0, 8.0] and s == 2.0 and not edge  # turned down: no extension
    s, _, _ = hl.grid_search(lambda s: 0.5, (0.5, 1.0, 2.0, 4.0))
    assert s == 0.5  # ties: the smallest strength


@pytest.mark.data
def test_tiny_run_selects_on_val_and_seals_once(tmp_path):
    hl = load_benchmark("headline")
    args = ["--models", "tiny", "--tasks", "storycloze", "--methods", "caa", "sadi", "--n-val", "4", "--n-sealed", "6",
            "--pairs", "8", "--out", str(tmp_path)]
    assert hl.main(args) == 0
    chosen = json.loads((tmp_path / "tiny" / "chosen.json").read_text())
    assert {c["method"] for c in chosen} == {"caa", "sadi"}
    assert all(len(c["points"]) >= hl.GRID_POINTS for c in chosen)
    sealed = sorted(p.name for p in (tmp_path / "tiny" / "sealed").iterdir())
    assert len(sealed) == 3  # base + the two chosen configurations
    md = (tmp_path / "headline.md").read_text()
    assert "Holm p" in md and "MDE" in md and "majority" in md
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "tiny" / "sealed").iterdir()}
    assert hl.main(args) == 0  # a rerun resumes and never rescores the sealed split
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "tiny" / "sealed").iterdir()} == before
    # the summary holds every model run into the folder, not only the last call's
    shutil.copytree(tmp_path / "tiny", tmp_path / "other")
    assert hl.main(args) == 0
    md = (tmp_path / "headline.md").read_text()
    assert "### tiny: selection" in md and "### other: selection" in md and md.count("the sealed split, once") == 2
