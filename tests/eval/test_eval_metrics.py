"""Metric definitions on hand-made items with known answers."""

from __future__ import annotations

import math

import pytest

from tl_steer import SteeringError
from tl_steer.eval.metrics import bootstrap, compute_metrics, wilson
from tl_steer.eval.scoring import ChoiceScores
from tl_steer.eval.tasks import MCItem, get_task


def cs(*lp):
    return ChoiceScores(tuple(lp), (1,) * len(lp), (1,) * len(lp))


def test_wilson_known_values():
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == pytest.approx(1.0)


def test_bootstrap_is_seeded_and_brackets_the_mean():
    vals = [0.0, 1.0] * 20
    a = bootstrap(lambda idx: sum(vals[i] for i in idx) / len(idx), len(vals))
    assert a == bootstrap(lambda idx: sum(vals[i] for i in idx) / len(idx), len(vals))
    assert a[0] < 0.5 < a[1]


def test_truthfulqa_mc1_mc2():
    item = MCItem("Q", (" t1", " t2", " f1", " f2"), (1, 1, 0, 0), {"mc1": (0, 2, 3)})
    # t1 loses to f1 within MC1; MC2 = (e^0 + e^0) / (e^0 + e^0 + e^0 + e^-inf)
    scores = [cs(-1.0, 0.0, 0.0, -50.0)]
    m = compute_metrics(get_task("truthfulqa_mc2"), [item], scores)
    assert m["mc1"].value == 0.0
    expect = (math.exp(-1) + 1) / (math.exp(-1) + 2 + math.exp(-50))
    assert m["mc2"].value == pytest.approx(expect)
    assert compute_metrics(get_task("truthfulqa_mc1"), [item], [cs(0.0, -1.0, -2.0, -3.0)])["mc1"].value == 1.0


def _bbq(cond, pol, label, target=0, unknown=2):
    return MCItem("Q", (" a", " b", " unknown"), tuple(int(i == label) for i in range(3)),
                  {"condition": cond, "polarity": pol, "target": target, "unknown": unknown})


def test_bbq_accuracy_and_bias_scores():
    items = [
        _bbq("disambig", "neg", label=0),     # predict 0 = target on neg: biased, correct
        _bbq("disambig", "nonneg", label=0),  # predict 1 = non-target on nonneg: biased, wrong
        _bbq("disambig", "neg", label=1),     # predict 1: non-target on neg: not biased, correct
        _bbq("ambig", "neg", label=2),        # predict 0 = target: biased, wrong
        _bbq("ambig", "nonneg", label=2),     # predict 2 = unknown: correct
    ]
    preds = [0, 1, 1, 0, 2]
    scores = [cs(*[0.0 if i == p else -5.0 for i in range(3)]) for p in preds]
    m = compute_metrics(get_task("bbq"), items, scores)
    assert m["acc_disambig"].value == pytest.approx(2 / 3)
    assert m["acc_ambig"].value == pytest.approx(1 / 2)
    assert m["bias_disambig"].value == pytest.approx(2 * (2 / 3) - 1)
    assert m["bias_ambig"].value == pytest.approx((1 - 0.5) * (2 * 1 / 1 - 1))
    assert m["acc"].n == 5 and m["bias_ambig"].n == 2


def test_acc_norm_and_errors():
    item = MCItem("Q", (" a", " longer answer"), (0, 1))
    s = ChoiceScores((-1.0, -2.0), (1, 2), (1, 13))
    m = compute_metrics(get_task("openbookqa"), [item], [s])
    assert m["acc"].value == 0.0 and m["acc_norm"].value == 1.0
    with pytest.raises(SteeringError, match="1 items but 0 scores"):
        compute_metrics(get_task("copa"), [item], [])
    with pytest.raises(SteeringError, match="mc1 needs TruthfulQA items"):
        compute_metrics(get_task("truthfulqa_mc1"), [item], [s])
