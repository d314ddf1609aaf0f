"""The input-adaptivity benchmark runs end to end on a tiny model, resumes, and measures what it says: no edit at
strength 0 means no KL; the mean-difference vector's effect grows with its strength; matched-effect interpolation."""

from __future__ import annotations

import json
import math

import pytest
from bench_import import load_benchmark


def _module():
    return load_benchmark('input_adaptivity')


def test_tiny_run_and_resume(tmp_path, monkeypatch):
    ia = _module()
    monkeypatch.setitem(ia.STRENGTHS, "caa", [0.0, 0.5, 1.0, 2.0])
    monkeypatch.setitem(ia.STRENGTHS, "mat_steer", [0.0, 1.0])
    args = ["--models", "tiny", "--n-fit", "24", "--n-test", "8", "--methods", "caa", "mat_steer", "--out", str(tmp_path)]
    assert ia.main(args) == 0
    rows = [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert {r["attribute"] for r in rows} == {"toxicity", "sentiment"}
    for r in rows:
        assert r["kl_des"] >= -1e-6 and r["edit_des"] >= 0 and math.isfinite(r["effect"])
        if r["strength"] == 0.0:
            # the unsteered log-probs are kept in float16: KL resolves to about 1e-5
            assert r["effect"] == pytest.approx(0.0, abs=1e-5) and r["kl_des"] == pytest.approx(0.0, abs=2e-5)
            assert r["edit_des"] == pytest.approx(0.0, abs=1e-6)
        if r["method"] == "mat_steer":
            assert set(r["gates_test_des"]) == {"toxicity", "sentiment"}
    for attr in ("toxicity", "sentiment"):
        caa = sorted((r for r in rows if r["method"] == "caa" and r["attribute"] == attr), key=lambda r: r["strength"])
        effects = [r["effect"] for r in caa[:4]]
        assert effects == sorted(effects) and effects[-1] > 0, effects
    gates = [json.loads(x) for x in (tmp_path / "gates.jsonl").read_text().splitlines()]
    assert {g["attribute"] for g in gates} == {"toxicity", "sentiment"}
    assert all(0.0 <= g["auc_all"] <= 1.0 and 0.0 <= g["auc_others_last"] <= 1.0 for g in gates)
    n = len(rows)
    assert ia.main(args) == 0
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == n
    assert "| tiny | toxicity | caa |" in (tmp_path / "input_adaptivity.md").read_text()
    # another run's folder joins the report (read only), as the docs' table merges three runs
    other = tmp_path / "other"
    other.mkdir()
    extra = {**rows[0], "method": "sadi_heads", "model": "tiny"}
    (other / "rows.jsonl").write_text(json.dumps(extra) + "\n")
    assert ia.main([*args, "--also", str(other)]) == 0
    report = [json.loads(x) for x in (tmp_path / "report_rows.jsonl").read_text().splitlines()]
    assert len(report) == n + 1 and report[-1]["method"] == "sadi_heads"
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == n  # this run's own checkpoint untouched
    assert f"| tiny | {extra['attribute']} | sadi_heads |" in (tmp_path / "input_adaptivity.md").read_text()


def test_interpolate_at_matched_effect():
    ia = _module()
    curve = [(0.2, 0.01), (0.6, 0.05), (1.2, 0.2)]
    assert ia.interpolate(curve, 0.4) == pytest.approx(0.03)
    assert ia.interpolate(curve, 0.1) == pytest.approx(0.005)  # from the unsteered origin (0, 0)
    assert math.isnan(ia.interpolate(curve, 1.5))
