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
    doc = json.loads((out / "tiny__truthfulqa_mc2__none__test__limit4.json").read_text())
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
    doc = json.loads((tmp_path / "r" / "tiny__toxigen__caa__test__limit3.json").read_text())
    assert doc["method"] == "caa" and doc["config"]["strength"] == 4.0 and doc["n"] == 3


def test_prompting_changes_the_prompt(tmp_path, data_dir):
    for m in ("none", "prompting"):
        assert main(["eval", "--model", "tiny", "--task", "copa", "--method", m, "--limit", "3", "--quiet",
                     "--data-dir", str(data_dir), "--out", str(tmp_path)]) == 0
    a = json.loads((tmp_path / "tiny__copa__none__test__limit3.json").read_text())
    b = json.loads((tmp_path / "tiny__copa__prompting__test__limit3.json").read_text())
    assert a["n"] == b["n"] == 3 and a["method"] != b["method"]


def test_errors_exit_2_with_a_message(tmp_path, capsys):
    rc = main(["eval", "--model", "tiny", "--task", "copa", "--data-dir", str(tmp_path / "none"), "--quiet"])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "--model", "tiny", "--task", "nosuchtask"])
    rc = main(["eval", "--model", "tiny", "--task", "copa", "--task-option", "shots", "--quiet"])
    assert rc == 2 and "takes [TASK:]KEY=VALUE" in capsys.readouterr().err


def _one_line_error(capsys, rc, match):
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("tl-steer: error: ") and match in err[0], err


def test_load_takes_the_method_from_the_manifest(tmp_path, data_dir, capsys):
    fit_dir = tmp_path / "sadi"
    common = ["--model", "tiny", "--quiet", "--data-dir", str(data_dir)]
    assert main(["fit", "--method", "sadi", "--task", "toxigen", "--fit-limit", "6", "--out", str(fit_dir), *common]) == 0
    capsys.readouterr()
    rc = main(["eval", "--task", "toxigen", "--method", "caa", "--load", str(fit_dir), "--limit", "2", *common])
    _one_line_error(capsys, rc, "holds a 'sadi' method, not 'caa'")
    out = tmp_path / "r"
    rc = main(["eval", "--task", "toxigen", "--load", str(fit_dir), "--strength", "2", "--limit", "2", "--out", str(out),
               *common])
    assert rc == 0
    doc = json.loads((out / "tiny__toxigen__sadi__test__limit2.json").read_text())
    assert doc["method"] == "sadi" and doc["config"]["strength"] == 2.0
    rc = main(["eval", "--task", "toxigen", "--load", str(fit_dir), "--kernel", "median", "--limit", "2", *common])
    _one_line_error(capsys, rc, "--kernel configure fitting and cannot be used with --load")
    rc = main(["fit", "--method", "sadi", "--task", "toxigen", "--fit-limit", "6", "--out", str(fit_dir), *common])
    _one_line_error(capsys, rc, "--force")
    rc = main(["fit", "--method", "sadi", "--task", "toxigen", "--fit-limit", "6", "--out", str(fit_dir), "--force",
               *common])
    assert rc == 0
    rc = main(["fit", "--method", "caa", "--task", "toxigen", "--kernel", "median", "--out", str(tmp_path / "x"),
               *common])
    _one_line_error(capsys, rc, "--kernel do not apply to --method caa")


def test_every_cli_failure_is_one_line(tmp_path, data_dir, capsys):
    common = ["--quiet", "--data-dir", str(data_dir), "--limit", "1"]
    rc = main(["eval", "--model", "no-such/model-xyz", "--task", "copa", *common])
    _one_line_error(capsys, rc, "cannot load model 'no-such/model-xyz'")
    if not __import__("torch").cuda.is_available():
        rc = main(["eval", "--model", "tiny", "--device", "cuda", "--task", "copa", *common])
        _one_line_error(capsys, rc, "CUDA is not available")
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    rc = main(["eval", "--model", "tiny", "--task", "copa", "--out", str(afile), *common])
    _one_line_error(capsys, rc, "is a file, not a directory")
    rc = main(["eval", "--model", "tiny", "--task", "copa", "--task-option", "shots=0", *common])
    _one_line_error(capsys, rc, "no selected task takes it")
    rc = main(["eval", "--model", "tiny", "--task", "copa", "--task-option", "mmlu:shots=0", *common])
    _one_line_error(capsys, rc, "'mmlu' is not among the tasks")


def test_task_options_go_only_to_tasks_that_take_them(tmp_path, data_dir, capsys):
    rc = main(["eval", "--model", "tiny", "--task", "copa", "mmlu", "--task-option", "shots=0", "--limit", "2",
               "--quiet", "--data-dir", str(data_dir), "--out", str(tmp_path)])
    assert rc == 0
    mmlu = json.loads((tmp_path / "tiny__mmlu__none__test__limit2__shots-0.json").read_text())
    copa = json.loads((tmp_path / "tiny__copa__none__test__limit2.json").read_text())
    assert mmlu["config"]["task_options"] == {"shots": 0} and copa["config"]["task_options"] == {}


def test_version_and_help_list_the_registry(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and "tl-steer 0.1.0" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = capsys.readouterr().out
    from tl_steer import registry

    for name in registry.names():
        assert name in text
    assert "--preset" in text and "[mat-steer]" in text


def test_result_files_keep_runs_that_differ_in_limit_or_options_apart(tmp_path, data_dir, capsys):
    import torch

    before = torch.get_num_threads()
    common = ["eval", "--model", "tiny", "--task", "mmlu", "--quiet", "--data-dir", str(data_dir), "--out", str(tmp_path),
              "--threads", "1"]
    assert main([*common, "--limit", "2", "--task-option", "shots=0"]) == 0
    assert main([*common, "--limit", "2", "--task-option", "shots=1"]) == 0
    assert main([*common, "--limit", "3", "--task-option", "shots=1"]) == 0
    names = sorted(p.name for p in tmp_path.glob("*.json"))
    assert names == ["tiny__mmlu__none__test__limit2__shots-0.json", "tiny__mmlu__none__test__limit2__shots-1.json",
                     "tiny__mmlu__none__test__limit3__shots-1.json"]
    assert torch.get_num_threads() == 1  # --threads 1
    torch.set_num_threads(before)


def test_console_prints_every_metric_not_only_the_headline(tmp_path, data_dir, capsys):
    assert main(["eval", "--model", "tiny", "--task", "truthfulqa_mc2", "bbq", "--limit", "6", "--quiet",
                 "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "truthfulqa_mc2 none mc2 =" in out and "mc1 = " in out
    assert "acc_ambig = " in out or "acc_disambig = " in out
    assert "(no --out given: nothing was written)" in out


def test_shared_prompt_flag_gives_the_same_result(tmp_path, data_dir):
    common = ["eval", "--model", "tiny-hf", "--task", "truthfulqa_mc2", "--limit", "3", "--quiet",
              "--data-dir", str(data_dir), "--task-option", "primer=false"]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--shared-prompt", "--out", str(tmp_path / "b")]) == 0
    a = json.loads(next((tmp_path / "a").glob("*.json")).read_text())
    b = json.loads(next((tmp_path / "b").glob("*.json")).read_text())
    assert b["config"]["shared_prompt"] is True
    assert a["per_item"]["mc2"] == pytest.approx(b["per_item"]["mc2"], abs=1e-4)
