"""The tl-steer CLI on the tiny model with a small --limit; results JSON + markdown; fit/load round trip."""

from __future__ import annotations

import json

import pytest

from tl_steer.cli import main

pytestmark = pytest.mark.data


def test_eval_writes_json_and_table(tmp_path, data_dir, capsys):
    out = tmp_path / "res"
    rc = main(["eval", "--model", "tiny", "--task", "truthfulqa_mc2", "toxigen", "--limit", "4", "--quiet",
               "--data-dir", str(data_dir), "--out", str(out)])
    assert rc == 0
    doc = json.loads((out / "tiny__truthfulqa_mc2__none__test.json").read_text())
    assert doc["n"] == 4 and doc["headline"] == "mc2" and 0 <= doc["metrics"]["mc2"]["value"] <= 1
    lo, hi = doc["metrics"]["mc2"]["ci95"]
    assert lo <= doc["metrics"]["mc2"]["value"] <= hi
    table = (out / "results.md").read_text()
    assert "| none |" in table and "truthfulqa_mc2 mc2" in table and "toxigen acc" in table
    assert "truthfulqa_mc2 none mc2" in capsys.readouterr().out


def test_fit_then_eval_with_load(tmp_path, data_dir, capsys):
    fit_dir = tmp_path / "caa"
    rc = main(["fit", "--model", "tiny", "--method", "caa", "--task", "toxigen", "--fit-limit", "6", "--quiet",
               "--data-dir", str(data_dir), "--out", str(fit_dir)])
    assert rc == 0 and (fit_dir / "manifest.json").is_file()
    rc = main(["eval", "--model", "tiny", "--task", "toxigen", "--method", "caa", "--load", str(fit_dir),
               "--strength", "4", "--limit", "3", "--quiet", "--data-dir", str(data_dir), "--out", str(tmp_path / "r")])
    assert rc == 0
    doc = json.loads((tmp_path / "r" / "tiny__toxigen__caa__test.json").read_text())
    assert doc["method"] == "caa" and doc["config"]["strength"] == 4.0 and doc["n"] == 3


def test_prompting_changes_the_prompt(tmp_path, data_dir):
    for m in ("none", "prompting"):
        assert main(["eval", "--model", "tiny", "--task", "copa", "--method", m, "--limit", "3", "--quiet",
                     "--data-dir", str(data_dir), "--out", str(tmp_path)]) == 0
    a = json.loads((tmp_path / "tiny__copa__none__test.json").read_text())
    b = json.loads((tmp_path / "tiny__copa__prompting__test.json").read_text())
    assert a["n"] == b["n"] == 3 and a["method"] != b["method"]


def test_errors_exit_2_with_a_message(tmp_path, capsys):
    rc = main(["eval", "--model", "tiny", "--task", "copa", "--data-dir", str(tmp_path / "none"), "--quiet"])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "--model", "tiny", "--task", "nosuchtask"])
    rc = main(["eval", "--model", "tiny", "--task", "copa", "--task-option", "shots", "--quiet"])
    assert rc == 2 and "takes [TASK:]KEY=VALUE" in capsys.readouterr().err
