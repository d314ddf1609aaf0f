"""benchmarks/side_by_side.py: the papers' numbers next to the sealed headline runs. The paper's row must say what the
transcribed table says, and our row must agree with the headline's own controls table (same values, same Holm)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench_import import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
PAPERS = json.loads((ROOT / "docs/assets/paper_numbers.json").read_text())


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_paper_row_is_the_transcribed_table(tmp_path):
    sbs = load_benchmark("side_by_side")
    text = sbs.render(PAPERS, tmp_path)  # no sealed runs here: our rows say so
    row = _cells(next(x for x in text.splitlines() if x.startswith("| SADI paper")))
    table = PAPERS["sadi_table1"]["tasks"]["storycloze"]
    assert row[4] == f"{table['baseline']:.1f}"
    for (_, key, _), cell in zip(sbs.COLUMNS, row[5:], strict=False):
        if key is None:
            assert cell == "–"
        else:
            assert cell == f"{table[key]:.1f} ({table[key] - table['baseline']:+.1f})"
    assert sum("not run" in x for x in text.splitlines()) == len(sbs.OURS)


def test_our_row_agrees_with_the_headline_controls_table(tmp_path):
    sbs = load_benchmark("side_by_side")
    from tl_steer.eval.report import controls_table, read_results

    src = ROOT / "docs/assets/headline/smollm2_sealed"
    shutil.copytree(src, tmp_path / "smollm2_sealed")
    text = sbs.render(PAPERS, tmp_path)
    ours = _cells(next(x for x in text.splitlines() if "SmolLM2" in x))
    results = read_results(src)
    holm = {}
    for line in controls_table(results).splitlines()[2:]:
        c = _cells(line)
        holm[c[1]] = (c[4].split(" [")[0], c[11])
    assert ours[3] == "200" and ours[4] == holm["none"][0]
    survived = []
    for (method, _, _), cell in zip(sbs.COLUMNS, ours[5:], strict=False):
        value, adjusted = holm[method]
        assert cell.startswith(value + " (")
        assert abs(float(cell.split("Holm p ")[1].rstrip(")")) - float(adjusted)) < 0.01  # both rounded
        if float(adjusted) < 0.05:
            survived.append(method)
    assert ours[-1] == (", ".join(survived) or "none")
