"""One reader per dataset: the only code that opens the files of ``../shared/data``.

Each ``<dataset>_rows(data_dir)`` returns the dataset's rows in file order, as plain dicts with the file's own
fields (plus what a row needs to be usable: WinoGrande's gold option, MMLU's subject). Formulations, the task
loaders of [`tl_steer.eval.tasks`][tl_steer.eval.tasks] (lm-evaluation-harness prompts) and
[`tl_steer.eval.reference_prompts`][tl_steer.eval.reference_prompts] (the SADI reference's prompts), and the
contrast texts of ``tl_steer.eval.gates`` and the benchmarks, turn these rows into items or
texts; none of them opens a file. ``SOURCES`` maps each dataset folder to its reader
(``tests/eval/test_sources.py`` checks that no other module reads a dataset).

Files are read with the ``datasets`` library (``load_dataset("json" | "csv", data_files=...)``), except TruthfulQA's
``mc_task.json`` and WinoGrande's ``dev-labels.lst``: the former maps answer strings to labels in dict keys whose order
matters and which differ per row (Arrow would turn them into one struct with thousands of null fields), the latter
is a bare list of integers; and ParaDetox's TSV, whose empty cells the csv module keeps as empty strings. Those are
read with the standard library.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import SteeringError
from .items import MMLU_COLS, csv_rows, data_path, read_rows

DataDir = str | Path | None

#: the BBQ categories available here, in the order items are read
BBQ_CATEGORIES = ("Age", "Disability_status", "Nationality", "Physical_appearance", "Religion", "Sexual_orientation")
_STORYCLOZE_COLS = ["InputStoryid", *[f"InputSentence{i}" for i in range(1, 5)], "RandomFifthSentenceQuiz1",
                    "RandomFifthSentenceQuiz2", "AnswerRightEnding"]


def truthfulqa_rows(data_dir: DataDir = None) -> list[dict[str, Any]]:
    """TruthfulQA v1 ``mc_task.json`` (817 questions with ``mc1_targets`` / ``mc2_targets``)."""
    with open(data_path(data_dir, "truthfulqa", "v1", "mc_task.json"), encoding="utf-8") as f:
        return json.load(f)


def toxigen_rows(data_dir: DataDir = None) -> list[dict[str, Any]]:
    """ToxiGen human-annotated, SafeNLP subset (6,514 statements)."""
    return read_rows("json", data_path(data_dir, "toxigen", "toxigen_human_annotated_safenlp.json"))


def bbq_rows(data_dir: DataDir = None) -> list[dict[str, Any]]:
    """BBQ, the six categories of ``BBQ_CATEGORIES`` in that order (11,956
    rows), each with its ``category``."""
    return [{**r, "category": cat} for cat in BBQ_CATEGORIES
            for r in read_rows("json", data_path(data_dir, "bbq", f"{cat}.jsonl"))]


def copa_rows(data_dir: DataDir = None) -> list[dict[str, Any]]:
    """SuperGLUE COPA val (100 labelled rows)."""
    return read_rows("json", data_path(data_dir, "copa", "val.jsonl"))


def sst2_rows(data_dir: DataDir = None) -> list[dict[str, Any]]:
    """GLUE SST-2 dev (872 rows: ``text``, ``label`` as the file's string ``"0"`` / ``"1"``)."""
    return csv_rows(data_path(data_dir, "sst2", "dev.tsv"), ["text", "label"], sep="\t", quoting=3)


def boolq_rows(data_dir: DataDir = None) -> list[dict[str, Any]]:
    """BoolQ dev (3,270 rows)."""
    return read_rows("json", data_path(data_dir, "boolq", "val.jsonl"))


def storycloze_rows(data_dir: DataDir = None, release: str = "test") -> list[dict[str, Any]]:
    """Story Cloze 2016, the ``test`` release (1,871 stories) or the ``val`` release (1,871 other labelled ones)."""
    if release not in ("test", "val"):
        raise SteeringError(f"storycloze release must be 'test' or 'val', got {release!r}")
    return csv_rows(data_path(data_dir, "storycloze", f"cloze_test_{release}__spring2016.csv"), _STORYCLOZE_COLS)


def winogrande_rows(data_dir: DataDir = None) -> list[dict[str, Any]]:
    """WinoGrande 1.1 dev (1,267 rows, lm-eval's partial-scoring form) with their 0-based gold option ``gold``."""
    rows = read_rows("json", data_path(data_dir, "winogrande", "dev_llmfoundry_partial_eval.jsonl"))
    with open(data_path(data_dir, "winogrande", "dev-labels.lst"), encoding="utf-8") as f:
        gold = [int(line) - 1 for line in f if line.strip()]
    if len(gold) != len(rows):
        raise SteeringError(f"winogrande: {len(rows)} items but {len(gold)} labels in dev-labels.lst")
    return [{**r, "gold": g} for r, g in zip(rows, gold, strict=True)]


def openbookqa_rows(data_dir: DataDir = None) -> list[dict[str, Any]]:
    """OpenBookQA main test (500 rows)."""
    cols = ["ID", "Question Stem", "Choices", "Complete Question", "Answer Key"]
    return csv_rows(data_path(data_dir, "openbookqa", "test.tsv"), cols, sep="\t")


def mmlu_subjects(data_dir: DataDir = None) -> list[str]:
    """The MMLU subjects, sorted (57 here)."""
    test_dir = data_path(data_dir, "mmlu", "test")
    subjects = sorted(p.name[: -len("_test.csv")] for p in test_dir.glob("*_test.csv"))
    if not subjects:
        raise SteeringError(f"no *_test.csv files in {test_dir}")
    return subjects


def mmlu_rows(data_dir: DataDir = None, split: str = "test", subject: str | None = None) -> list[dict[str, Any]]:
    """MMLU rows of ``split`` (``test``: 14,042; ``dev``: 5 per subject), by subject in sorted order, each with its
    ``subject`` and its index ``k`` within the subject; ``subject`` restricts to one."""
    if split not in ("test", "dev"):
        raise SteeringError(f"mmlu split must be 'test' or 'dev', got {split!r}")
    subjects = [subject] if subject is not None else mmlu_subjects(data_dir)
    return [{**r, "subject": sub, "k": k} for sub in subjects
            for k, r in enumerate(csv_rows(data_path(data_dir, "mmlu", split, f"{sub}_{split}.csv"), MMLU_COLS))]


def triviaqa_rows(data_dir: DataDir = None) -> list[dict[str, Any]]:
    """TriviaQA, ITI's subset (3,610 rows: ``question``, ``answer`` (aliases joined by ``;``), ``false_answer``)."""
    return csv_rows(data_path(data_dir, "triviaqa", "TriviaQA_iti.csv"), ["question", "answer", "false_answer"])


def paradetox_rows(data_dir: DataDir = None) -> list[dict[str, str]]:
    """ParaDetox: toxic sentences and their neutral paraphrases (rows with both ``toxic`` and ``neutral1``)."""
    with open(data_path(data_dir, "paradetox", "paradetox.tsv"), encoding="utf-8", newline="") as f:
        return [r for r in csv.DictReader(f, delimiter="\t") if r["toxic"].strip() and r["neutral1"].strip()]


#: the reader of each dataset folder
SOURCES: dict[str, Callable[..., list[Any]]] = {
    "truthfulqa": truthfulqa_rows, "toxigen": toxigen_rows, "bbq": bbq_rows, "copa": copa_rows, "sst2": sst2_rows,
    "boolq": boolq_rows, "storycloze": storycloze_rows, "winogrande": winogrande_rows,
    "openbookqa": openbookqa_rows, "mmlu": mmlu_rows, "triviaqa": triviaqa_rows, "paradetox": paradetox_rows,
}
