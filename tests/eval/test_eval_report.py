"""Markdown table and plot from results."""

from __future__ import annotations

import pytest

from tl_steer.eval.metrics import Estimate
from tl_steer.eval.report import markdown_table, plot, read_results, write_json
from tl_steer.eval.run import EvalResult


def res(method, task, value, n=100):
    est = Estimate(value, value - 0.05, value + 0.05, n, "wilson")
    return EvalResult(task, method, "m", "test", n, "acc", {"acc": est}, 1.0)


def test_roundtrip_and_table(tmp_path):
    rs = [res("none", "toxigen", 0.5), res("mat-steer", "toxigen", 0.61), res("none", "bbq", 0.4, n=80)]
    for r in rs:
        write_json(r, tmp_path)
    back = read_results(tmp_path)
    assert {(r.method, r.task) for r in back} == {(r.method, r.task) for r in rs}
    table = markdown_table(rs)
    assert "| mat-steer | 61.0 [56.0, 66.0] | – |" in table
    assert table.strip().endswith("| n | 100 | 80 |")


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = plot([res("none", "toxigen", 0.5), res("caa", "toxigen", 0.55)], tmp_path / "p.png")
    assert path.stat().st_size > 1000
