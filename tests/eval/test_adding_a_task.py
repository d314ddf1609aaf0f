"""docs/adding-a-task.md adds a task with one TaskSpec; its code blocks run as written, in order, and the task then
works everywhere a shipped task does: evaluate (with the metrics the spec lists), per-item values, balanced
contrast sets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tl_steer import SteeringError
from tl_steer.eval.tasks import TASKS, TaskSpec, get_task, register_task

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.data
def test_adding_a_task_page_runs(tiny, tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("TL_STEER_DATA", str(data_dir))
    text = (ROOT / "docs" / "adding-a-task.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 4
    env: dict = {"model": tiny, "split_dir": tmp_path}
    try:
        for block in blocks:
            exec(compile(block, "docs/adding-a-task.md", "exec"), env)  # noqa: S102 - the page's own code
        spec = get_task("sst2_cloze")
        assert spec is env["spec"] and len(env["load_task"]("sst2_cloze")) == spec.size
        r = env["result"]
        assert r.n == 8 and set(r.metrics) == {"acc", "acc_norm"} and set(r.per_item) == {"acc", "acc_norm"}
        c = env["contrast"]
        assert len(c.positive) == len(c.negative) > 0
        assert env["ends"](c.positive) == env["ends"](c.negative)  # balanced by the spec's balance_key
        assert (tmp_path / "sst2_cloze.json").is_file()
    finally:
        TASKS.pop("sst2_cloze", None)


def test_register_task_refuses_taken_names_and_unknown_metrics():
    spec = get_task("sst2")
    with pytest.raises(SteeringError, match="exists"):
        register_task(spec)
    with pytest.raises(SteeringError, match="unknown metric families"):
        register_task(TaskSpec("new_task", "new_task", spec.loader, "acc", "", "x", metrics=("acc", "f1")))
    with pytest.raises(SteeringError, match="lower case"):
        register_task(TaskSpec("New-Task", "new_task", spec.loader, "acc", "", "x"))
    assert "new_task" not in TASKS
