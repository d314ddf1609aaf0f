"""benchmarks/mat_steer_table.py end to end on the tiny model (--quick): every choice made on val and recorded,
paired comparisons against base and the best baseline, gate selectivity with ParaDetox."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.data


def test_mat_steer_table_quick(data_dir, tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("mst", ROOT / "benchmarks" / "mat_steer_table.py")
    mst = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mst)
    out = tmp_path / "t"
    assert mst.main(["--quick", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    val = s["val"]
    assert set(val["positions"]) == set(mst.POSITIONS) and len(val["layer_site"]) == 2 * len(s["layers"])
    sel = s["selected"]
    assert sel["mat-steer"]["positions"] in mst.POSITIONS and sel["best_baseline_on_val"] in mst.BASELINES
    for label in ("mat-steer", "mat-steer:reference-preset", "mat-steer:reference-data", *mst.BASELINES):
        grid = val[f"strength:{label}"]
        assert sel["strengths"][label] == float(max(grid, key=grid.get))  # the val argmax, nothing else
    assert set(s["test"]) == {"none", "prompting", "mat-steer", "mat-steer:reference-preset",
                              "mat-steer:reference-data", *mst.BASELINES}
    vs_best = [c for c in s["comparisons"] if c["method"] == "mat-steer" and c["against"] == sel["best_baseline_on_val"]]
    assert {c["task"] for c in vs_best} == set(s["tasks"]) and all(c["n"] > 0 for c in vs_best)
    assert {g["eval_set"] for g in s["gates"]} == {"truthfulness", "toxicity", "bias", "paradetox"}
    assert (out / "gates.png").is_file() and "Paired differences" in (out / "results.md").read_text()
    # every condition is compared with base and with the val-best baseline; --from-cells recomputes it from the cells
    against = {(c["method"], c["against"]) for c in s["comparisons"]}
    for label in set(s["test"]) - {"none"}:
        assert (label, "none") in against
        assert label == sel["best_baseline_on_val"] or (label, sel["best_baseline_on_val"]) in against
    def keyed(comparisons):  # cells are read back in file order, and per-item values are stored to 6 decimals
        return {(c["method"], c["against"], c["task"]): c for c in comparisons}

    before = keyed(s["comparisons"])
    assert mst.main(["--from-cells", "--out", str(out)]) == 0
    after = keyed(json.loads((out / "summary.json").read_text())["comparisons"])
    assert set(after) == set(before)
    for k, c in after.items():
        assert c["diff"] == pytest.approx(before[k]["diff"], abs=1e-5) and c["n"] == before[k]["n"], k
        assert c["mcnemar_p"] == before[k]["mcnemar_p"], k
