"""The controls of every results table, on items whose answers are known."""

from __future__ import annotations

import math

import pytest

from tl_steer import SteeringError
from tl_steer.eval.controls import (
    answer_distribution,
    balanced_accuracy,
    constant_answers,
    format_compliance,
    holm,
    majority_baseline,
    minimum_detectable_effect,
)
from tl_steer.eval.items import MCItem

YES_NO = [MCItem(f"q{i}", (" Yes", " No"), (1, 0) if i < 7 else (0, 1)) for i in range(10)]  # 7 yes, 3 no
OPEN = [MCItem("a", (" x", " y", " z"), (0, 0, 1)), MCItem("b", (" u", " v"), (1, 0)), MCItem("c", (" p", " q"), (0, 1))]


def test_constant_answers_and_the_majority_baseline():
    assert constant_answers(YES_NO) == {"'Yes'": 0.7, "'No'": 0.3}
    assert majority_baseline(YES_NO) == ("'Yes'", 0.7)
    # cloze items (options differ): a position is no answer strategy for a log-likelihood scorer; uniform chance is
    assert constant_answers(OPEN) == pytest.approx({"random": (1 / 3 + 1 / 2 + 1 / 2) / 3})
    # TruthfulQA's file lists true answers first: "always option 1" would be 100%, and is not offered
    tqa_like = [MCItem(f"q{i}", (f" true {i}", f" false {i}", f" also false {i}"), (1, 0, 0)) for i in range(4)]
    assert constant_answers(tqa_like) == pytest.approx({"random": 1 / 3})
    # a task's own strategies (BBQ: always the unknown answer; -1 = the item has none, counted wrong)
    bbq_like = [MCItem("q", (" a", " b", " unknown"), (0, 0, 1), {"unknown": 2}),
                MCItem("q", (" unknown", " a", " b"), (0, 1, 0), {"unknown": 0}),
                MCItem("q", (" a", " b", " c"), (1, 0, 0), {"unknown": -1})]
    got = constant_answers(bbq_like, {"always unknown": lambda it: it.meta["unknown"]})
    assert got["always unknown"] == pytest.approx(1 / 3)
    assert majority_baseline(bbq_like, {"always unknown": lambda it: it.meta["unknown"]}) == ("random", pytest.approx(1 / 3))


def test_balanced_accuracy_does_not_reward_a_constant_answer():
    always_yes = [0] * 10
    assert sum(it.labels[p] for it, p in zip(YES_NO, always_yes, strict=True)) / 10 == 0.7  # plain accuracy: 0.7
    assert balanced_accuracy(YES_NO, always_yes) == 0.5
    assert balanced_accuracy(YES_NO, [it.correct for it in YES_NO]) == 1.0
    assert balanced_accuracy(YES_NO, [0] * 7 + [0, 1, 1]) == pytest.approx((1 + 2 / 3) / 2)
    with pytest.raises(SteeringError, match="10 items but 2"):
        balanced_accuracy(YES_NO, [0, 1])


def test_answer_distribution_and_format_compliance():
    assert answer_distribution(YES_NO, [0] * 10) == {"'Yes'": 1.0}
    assert answer_distribution(OPEN, [2, 0, 0]) == {"option 1": 2 / 3, "option 3": 1 / 3}
    assert format_compliance(YES_NO[:4], ["Yes", " no", "The", "\n"]) == 0.5


def test_holm_against_hand_computed_values():
    # sorted p: 0.01, 0.02, 0.04 -> 3*0.01, max(0.03, 2*0.02), max(0.04, 1*0.04)
    got = holm([0.04, 0.01, None, 0.02])
    assert got[2] is None and [got[1], got[3], got[0]] == pytest.approx([0.03, 0.04, 0.04])
    assert holm([0.5, 0.9])[0] == pytest.approx(1.0) and holm([]) == []
    with pytest.raises(SteeringError, match=r"\[0, 1\]"):
        holm([1.5])


def test_minimum_detectable_effect():
    # (1.96 + 0.8416) * sd / sqrt(n)
    assert minimum_detectable_effect(100, sd_diff=1.0) == pytest.approx(0.28016, abs=1e-4)
    assert minimum_detectable_effect(400, p=0.5) == pytest.approx(2.8016 * math.sqrt(0.5) / 20, abs=1e-4)
    assert minimum_detectable_effect(50, p=0.6) > minimum_detectable_effect(200, p=0.6)
    with pytest.raises(SteeringError, match="sd_diff or a base accuracy"):
        minimum_detectable_effect(50)


def test_controls_table_on_known_results():
    """Two tasks, a base and two conditions: the table shows the majority baseline, balanced accuracy, the answer
    given most, paired differences, and Holm-adjusts the four p-values together."""
    from tl_steer.eval.controls import item_controls
    from tl_steer.eval.metrics import Estimate
    from tl_steer.eval.report import controls_table
    from tl_steer.eval.run import EvalResult
    from tl_steer.eval.scoring import ChoiceScores

    items = [MCItem(f"q{i}", (" Yes", " No"), (1, 0) if i % 4 else (0, 1)) for i in range(40)]  # 30 yes, 10 no

    def result(task, method, preds):
        scores = [ChoiceScores((0.0, -1.0) if p == 0 else (-1.0, 0.0), (1, 1), (3, 2)) for p in preds]
        hits = [float(it.labels[p] == 1) for it, p in zip(items, preds, strict=True)]
        est = Estimate(sum(hits) / len(hits), 0.0, 1.0, len(hits), "wilson")
        return EvalResult(task, method, "m", "test", len(items), "acc", {"acc": est}, 0.0, {}, {"acc": hits},
                          list(range(40)), item_controls(items, scores, ("acc",)))

    always_yes = [0] * 40
    perfect = [it.correct for it in items]
    results = [result(t, m, p) for t in ("a", "b") for m, p in (("none", always_yes), ("good", perfect),
                                                                ("same", always_yes))]
    md = controls_table(results)
    lines = md.splitlines()
    assert len(lines) == 2 + 6
    base_a = next(x for x in lines if x.startswith("| a | none |"))
    assert "| 75.0 | 50.0 | 'Yes' 100% |" in base_a  # majority 75% = plain accuracy of always-yes; balanced 50
    good_a = next(x for x in lines if x.startswith("| a | good |"))
    assert "+25.0" in good_a and good_a.rstrip(" |").split("|")[-2].strip().endswith("*")  # Holm-significant
    same_a = next(x for x in lines if x.startswith("| a | same |"))
    assert "+0.0" in same_a and "| 1 | 1 |" in same_a  # McNemar p = 1, Holm p = 1
