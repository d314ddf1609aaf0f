"""The SADI reference's zero-shot prompts (github.com/weixuan-wang123/SADI, ``load_dataset.py`` at HEAD d7fedf0).

Each task asks for a one-word answer (a letter, ``Positive``/``Negative``, ``Yes``/``No``) after the prompt; the
choices here are that word with a leading space, since the reference scores ``f"{prompt} {answer}"``. The items
are the same rows as the harness's own task of the same data (same pool, so the same stored train/val/test split).

Two metrics ([`reference_em()`][tl_steer.eval.reference_prompts.reference_em] and the log-likelihood ``acc``):

* ``em`` (the reference's): feed ``prompt + " " + correct answer``, take the argmax token at each answer position,
  decode, strip punctuation and case, and compare with the answer (its ``evalone``). With a one-token answer this
  is "the greedy next token is the answer": a choice the model ranks first among the options still counts as wrong
  when another token ("The", "\\n") beats it.
* ``acc``: the usual log-likelihood multiple choice among the task's options.

Differences from the reference data (the data here has no train splits; see ``../shared/data/README.md``):

* COPA: the 100 labelled SuperGLUE val items (the reference uses 1,500 XCOPA train rows for pairs and the XCOPA
  test set); StoryCloze: the 2016 test release (the reference splits the 2016 val release 20/80); BoolQ: the dev
  set; WinoGrande: the 1.1 dev set, whose sentence and options are rebuilt from lm-eval's partial-scoring form (the
  options are what follows the two contexts' longest common prefix, backed off to a word boundary); MMLU: all
  subjects' test rows (the reference evaluates on the rows it drew pairs from: its ``test_data = train_data``).
* NLI (XNLI) is not in ``../shared/data``, so that task is absent.
* Pairs: the reference draws a wrong MMLU letter with an unseeded ``random.choice``; here it is seeded.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import SteeringError
from ..pairs import ContrastSet
from .items import MCItem
from .sources import boolq_rows, copa_rows, mmlu_rows, sst2_rows, storycloze_rows, winogrande_rows

_PUNCT = [".</s>", ".\n", ".", ";", "!", ",", "?", "\n", "</s>", "<pad>"]


def normalize_answer(text: str) -> str:
    """The reference's ``evalone`` normalisation: strip, drop punctuation and newlines, lower-case."""
    out = text.strip()
    for p in _PUNCT:
        out = out.replace(p, "")
    return out.lower()


def reference_em(predicted: str, answer: str) -> bool:
    """The reference's exact match of a decoded greedy answer against the gold answer word."""
    return normalize_answer(predicted) == answer.strip().lower()


def _ab(prompt: str, correct: int, meta: dict[str, Any], letters: str = "AB") -> MCItem:
    return MCItem(prompt, tuple(" " + x for x in letters), tuple(int(i == correct) for i in range(len(letters))), meta)


def rotated(options: Sequence[str], correct: int, rotate: int) -> tuple[list[str], int]:
    """The options listed ``rotate`` places later (cyclic: letter ``i`` shows option ``(i + rotate) % k``) and the
    correct letter's new index. ``rotate=0`` is the dataset's order; scoring every rotation and averaging removes a
    model's preference for a letter from the score (``tl_steer.eval.run.evaluate_orders``)."""
    k = len(options)
    if isinstance(rotate, bool) or not isinstance(rotate, int) or rotate < 0:
        raise SteeringError(f"rotate must be an int >= 0, got {rotate!r}")
    return [options[(i + rotate) % k] for i in range(k)], (correct - rotate) % k


def load_copa(data_dir: str | Path | None = None, rotate: int = 0) -> list[MCItem]:
    """COPA items with the SADI reference's prompt (answers `` A`` / `` B``; ``rotate``: the options' order,
    [`rotated()`][tl_steer.eval.reference_prompts.rotated])."""
    items = []
    for r in copa_rows(data_dir):
        (a, b), correct = rotated([r["choice1"].strip(), r["choice2"].strip()], int(r["label"]), rotate)
        prompt = (f"Question:\n{r['premise'].strip()} Based on the previous passage, choose the most reasonable "
                  f"{r['question']}.\nA:{a}\nB:{b}\n\nAnswer:\n")
        items.append(_ab(prompt, correct, {"id": r["idx"]}))
    return items


def load_storycloze(data_dir: str | Path | None = None, release: str = "test", rotate: int = 0) -> list[MCItem]:
    """Story Cloze items with the SADI reference's prompt (answers `` A`` / `` B``). ``release="val"``: the 2016
    *val* release (1,871 other stories, labelled), a source of extra contrast pairs (the reference draws its
    StoryCloze pairs from that release)."""
    items = []
    for r in storycloze_rows(data_dir, release):
        story = " ".join(r[f"InputSentence{i}"].strip() for i in range(1, 5))
        (a, b), correct = rotated([r["RandomFifthSentenceQuiz1"].strip(), r["RandomFifthSentenceQuiz2"].strip()],
                                  int(r["AnswerRightEnding"]) - 1, rotate)
        prompt = (f"{story}\nQuestion: What is a possible continuation for the story given the following options?\n"
                  f"A: {a} B: {b}\nAnswer:")
        items.append(_ab(prompt, correct, {"id": r["InputStoryid"]}))
    return items


def load_sst2(data_dir: str | Path | None = None) -> list[MCItem]:
    """SST-2 items with the SADI reference's prompt (answers `` Positive`` / `` Negative``)."""
    items = []
    for k, r in enumerate(sst2_rows(data_dir)):
        prompt = ("Consider the sentiment expression in this sentence and respond briefly with 'positive' or "
                  f"'negative'.\n\n{r['text'].strip()}\n\nAnswer:")
        pos = int(r["label"]) == 1
        items.append(MCItem(prompt, (" Positive", " Negative"), (int(pos), int(not pos)), {"id": k}))
    return items


def load_boolq(data_dir: str | Path | None = None) -> list[MCItem]:
    """BoolQ items with the SADI reference's prompt (answers `` Yes`` / `` No``)."""
    items = []
    for r in boolq_rows(data_dir):
        yes = str(r["label"]).lower() == "true"
        prompt = ("Is the answer to the question encapsulated in the passage? Please confirm with 'yes' or 'no'.\n\n"
                  f"Passage: {r['passage'].strip()}\n\nQuestion: {r['question'].strip()}\n\nAnswer:")
        items.append(MCItem(prompt, (" Yes", " No"), (int(yes), int(not yes)), {"id": r["idx"]}))
    return items


def load_mmlu(data_dir: str | Path | None = None, rotate: int = 0) -> list[MCItem]:
    """MMLU items with the SADI reference's zero-shot letter prompt (answers `` A`` .. `` D``; ``rotate``: the
    options' cyclic order)."""
    items = []
    for r in mmlu_rows(data_dir, "test"):
        options, correct = rotated([r[f"choice{i}"] for i in range(4)], int(r["answer"]), rotate)
        prompt = (f"Question: {r['question']}\nWhich of the following answers is correct?\n"
                  + "".join(f"{L}. {o}\n" for L, o in zip("ABCD", options, strict=True))
                  + "State the letter corresponding to the correct answer.\nAnswer:")
        items.append(_ab(prompt, correct, {"id": f"{r['subject']}-{r['k']}", "subject": r["subject"]}, "ABCD"))
    return items


def _winogrande_options(contexts: Sequence[str]) -> tuple[str, str, str]:
    """(text before the blank, option 1, option 2) from two contexts that differ only in the filled option."""
    a, b = contexts
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    n = a.rfind(" ", 0, n) + 1  # back off to a word boundary ("the b|lanket" / "the b|ed" -> "the blanket" / "the bed")
    return a[:n], a[n:], b[n:]


def load_winogrande(data_dir: str | Path | None = None, rotate: int = 0) -> list[MCItem]:
    """WinoGrande items with the SADI reference's prompt (answers `` A`` / `` B``; ``rotate``: the options' order)."""
    items = []
    for k, r in enumerate(winogrande_rows(data_dir)):
        head, o1, o2 = _winogrande_options(r["context_options"])
        (o1, o2), correct = rotated([o1, o2], r["gold"], rotate)
        sentence = re.sub(r"\s+", " ", f"{head}_ {r['continuation'].strip()}")
        prompt = f"Please fill in the blanks. Write A or B as the answer.\n\nSentence: {sentence}\nA. {o1}\nB. {o2}\nAnswer:"
        items.append(_ab(prompt, correct, {"id": k}))
    return items


def reference_pairs(name: str, items: Sequence[MCItem], max_pairs: int | None = None, seed: int = 0) -> ContrastSet:
    """Contrast pairs as the reference builds them: ``f"{prompt.strip()} {correct}"`` vs the same prompt with a
    wrong answer (for four options a seeded random wrong letter), one pair per item, the first ``max_pairs``."""
    rng = random.Random(seed)
    pos, neg, ids = [], [], []
    for i, it in enumerate(items[:max_pairs] if max_pairs else items):
        wrong = [j for j, lab in enumerate(it.labels) if lab == 0]
        w = wrong[0] if len(wrong) == 1 else rng.choice(wrong)
        head = it.prompt.strip()
        pos.append(f"{head} {it.choices[it.correct].strip()}")
        neg.append(f"{head} {it.choices[w].strip()}")
        ids.append(it.meta.get("id", i))
    if not pos:
        raise SteeringError(f"no items to build {name!r} pairs from")
    return ContrastSet(name, tuple(pos), tuple(neg), (tuple(ids), tuple(ids)))


#: (task name, pool, loader, description) of the SADI reference's zero-shot tasks
SADI_TASKS = (
    ("sadi_copa", "copa", load_copa, "COPA with the SADI reference's letter prompt"),
    ("sadi_storycloze", "storycloze", load_storycloze, "Story Cloze with the SADI reference's letter prompt"),
    ("sadi_sst2", "sst2", load_sst2, "SST-2 with the SADI reference's Positive/Negative prompt"),
    ("sadi_boolq", "boolq", load_boolq, "BoolQ with the SADI reference's Yes/No prompt"),
    ("sadi_mmlu", "mmlu", load_mmlu, "MMLU with the SADI reference's letter prompt (zero-shot)"),
    ("sadi_winogrande", "winogrande", load_winogrande, "WinoGrande with the SADI reference's letter prompt"),
)
