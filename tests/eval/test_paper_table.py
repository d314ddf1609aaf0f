"""benchmarks/paper_table.py end to end on the tiny model: val selection of every fitted method's strength from
its grid, the MAT-Steer settings it fits with, one JSON per cell, and the final verdict line."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _paper_table():
    spec = importlib.util.spec_from_file_location("paper_table", ROOT / "benchmarks" / "paper_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_paper_table_selects_on_val_and_records_config(data_dir, tmp_path, capsys):
    pt = _paper_table()
    out = tmp_path / "t"
    rc = pt.main(["--model", "tiny", "--data-dir", str(data_dir), "--methods", "none", "caa", "mat-steer",
                  "--limit", "2", "--mmlu-limit", "0", "--fit-limit", "4", "--max-pairs", "4", "--val-limit", "2",
                  "--fit-option", "epochs=2", "--out", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    # every fitted method was tried at each grid value on val, then the selection was printed
    for m in ("caa", "mat-steer"):
        for s in pt.GRID[m]:
            assert f"val {m} strength {s}:" in text
        assert f"selected {m} strength" in text
    assert "mat-steer is" in text and "| mat-steer |" in text
    cells = {(d["method"], d["task"]): d for d in (json.loads(p.read_text()) for p in out.glob("*.json"))}
    assert {(m, t) for m in ("none", "caa", "mat-steer") for t in pt.TASKS} <= set(cells)
    assert all(d["split"] == "test" and d["n"] == 2 for d in cells.values())
    mat = cells[("mat-steer", "bbq")]["config"]
    assert mat["strength"] in pt.GRID["mat-steer"]
    assert mat["fit_options"] == {"epochs": 2}
    assert mat["fit_config"]["preset"] == "tuned" and mat["fit_config"]["epochs"] == 2
    from tl_steer.methods.mat_steer import PRESETS

    assert mat["fit_config"]["kernel"] == "median" and mat["fit_config"]["lambdas"] == list(PRESETS["tuned"]["lambdas"])
    assert mat["fit_config"]["gate_init"] == PRESETS["tuned"]["gate_init"]
    assert cells[("caa", "bbq")]["config"]["fit_options"] == {}
    assert cells[("caa", "toxigen")]["config"]["strength"] in pt.GRID["caa"]
    assert cells[("none", "bbq")]["config"]["strength"] is None


def test_paper_table_fixed_strength_skips_selection(data_dir, tmp_path, capsys):
    pt = _paper_table()
    rc = pt.main(["--model", "tiny", "--data-dir", str(data_dir), "--methods", "caa", "--strength", "caa=3",
                  "--limit", "1", "--mmlu-limit", "0", "--fit-limit", "4", "--max-pairs", "4",
                  "--out", str(tmp_path / "u"), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "val caa" not in text and "'caa': 3.0" in text
