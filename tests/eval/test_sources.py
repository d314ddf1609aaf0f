"""One reader per dataset (tl_steer.eval.sources): no other module of the package or the benchmarks names a dataset
file, every dataset the tasks use has a reader, and the two formulations of a dataset (lm-evaluation-harness's
prompt and the SADI reference's) are formulations of the same rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from tl_steer.eval.sources import SOURCES
from tl_steer.eval.tasks import TASKS, load_task

ROOT = Path(__file__).resolve().parents[2]
SHARED = ("copa", "sst2", "boolq", "storycloze", "mmlu", "winogrande")  # both formulations ship


@pytest.mark.data
def test_only_the_sources_module_names_a_dataset_file(data_dir):
    files = {p.name for folder in SOURCES for p in (data_dir / folder).rglob("*")
             if p.is_file() and p.name != "README.md" and not p.name.endswith("_test.csv")
             and not p.name.endswith("_dev.csv")}
    files |= {"_test.csv", "_dev.csv", "{cat}.jsonl"}  # MMLU's per-subject files and BBQ's per-category ones
    assert len(files) > 15
    offenders = {}
    for path in [*(ROOT / "tl_steer").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]:
        if path.name == "sources.py":
            continue
        text = path.read_text(encoding="utf-8")
        named = sorted(f for f in files if f'"{f}"' in text or f"'{f}'" in text or f"_{f}" in text and f.startswith("_"))
        if named:
            offenders[str(path.relative_to(ROOT))] = named
    assert not offenders, offenders


def test_every_task_pool_has_a_reader():
    assert {spec.data_folder or spec.pool for spec in TASKS.values()} <= set(SOURCES)


@pytest.mark.data
@pytest.mark.parametrize("pool", SHARED)
def test_the_two_formulations_read_the_same_rows(pool, data_dir):
    harness, reference = load_task(pool, data_dir), load_task(f"sadi_{pool}", data_dir)
    assert len(harness) == len(reference) == TASKS[pool].size
    assert [it.meta["id"] for it in harness] == [it.meta["id"] for it in reference]
    assert harness[0].prompt != reference[0].prompt  # two formulations, not one
    # both keep the file's gold answer; SST-2 and BoolQ list the two answers in opposite orders
    flip = pool in ("sst2", "boolq")
    assert [it.correct for it in harness] == [1 - it.correct if flip else it.correct for it in reference]
