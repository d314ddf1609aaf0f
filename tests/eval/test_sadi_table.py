"""benchmarks/sadi_table.py end to end on the tiny model (--quick): the reference prompts and pairs, every choice
made on val and recorded (the val argmax, nothing else), paired comparisons, the ablation and the pairs curve."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.data


def _load():
    spec = importlib.util.spec_from_file_location("sadi_table", ROOT / "benchmarks" / "sadi_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sadi_table_quick(data_dir, tmp_path):
    st = _load()
    out = tmp_path / "t"
    assert st.main(["--quick", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    log = json.loads((out / "sadi_table.json").read_text())
    assert set(log["tasks"]) == {"sadi_copa", "sadi_sst2"}
    for task, t in log["tasks"].items():
        assert t["n_test"] > 0 and t["n_train_pairs"] > 0
        for label, picks in t["chosen"].items():
            for metric, config in picks.items():
                group = [c for c in t["val_grid"] if c.split(":")[0] == config.split(":")[0]]
                best = max(t["val_grid"][c][metric] for c in group)
                assert t["val_grid"][config][metric] == best, (task, label, metric)  # chosen on val, by argmax
        for label in ("SADI-HEAD", "SADI-NEURON", "SADI-HIDDEN", "CAA", "ITI", "random mask (Table 4)",
                      "fixed vector (Table 4)"):
            assert set(t["vs_base"][label]) == {"em", "acc"}
            assert t["vs_base"][label]["em"]["n"] == t["n_test"]
    for metric in ("em", "acc"):
        avg = log["average"][metric]
        assert avg["best_baseline"] in ("CAA", "ITI") and "SADI-HEAD" in avg["vs_best_baseline"]
    assert [p["pairs"] for p in log["pairs_curve"]["points"]] == [3, 6]
    qa = log["triviaqa"]
    assert set(qa["test"]) == {"base", "SADI-HEAD", "CAA", "ITI"} and qa["n_test"] == 4
    assert all(len(v) == qa["n_test"] and set(v) <= {0.0, 1.0} for v in qa["per_item"].values())
    assert qa["chosen"]["SADI-HEAD"] == max((c for c in qa["val"] if c.startswith("head:")), key=lambda c: qa["val"][c])
    md = (out / "sadi_table.md").read_text()
    assert "Pairs curve" in md and "| SADI-HEAD |" in md and (out / "sadi_table.png").is_file()


def test_average_paired_is_the_mean_of_per_task_differences():
    st = _load()
    a = {"x": [0.0, 1.0, 0.0, 1.0], "y": [1.0, 1.0]}
    b = {"x": [1.0, 1.0, 1.0, 1.0], "y": [0.0, 1.0]}
    d = st.average_paired(a, b, n_boot=500)
    assert d["diff"] == pytest.approx((0.5 + -0.5) / 2) and d["ci95"][0] <= d["diff"] <= d["ci95"][1]


def test_exact_match_normalises_like_squad():
    st = _load()
    assert st.exact_match(" The Beatles.\nQ: next", ["Beatles"]) == 1.0
    assert st.exact_match(" Paris, France", ["Paris"]) == 0.0 and st.normalize_qa("An Apple!") == "apple"


def test_winogrande_options_are_rebuilt_at_a_word_boundary():
    from tl_steer.eval.reference_prompts import _winogrande_options, normalize_answer, reference_em

    assert _winogrande_options(["but the blanket", "but the bed"]) == ("but the ", "blanket", "bed")
    assert _winogrande_options(["so Sarah", "so Maria"]) == ("so ", "Sarah", "Maria")
    assert normalize_answer(" Positive.\n") == "positive" and reference_em(" yes", " Yes") and not reference_em("\n", " A")
