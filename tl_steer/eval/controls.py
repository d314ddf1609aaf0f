"""The controls every results table carries: what a model that ignores the question would score, accuracy that a
constant answer cannot inflate, multiple-comparison correction, and the smallest effect the sample could detect.

* [`constant_answers()`][tl_steer.eval.controls.constant_answers]: the accuracy of always giving the same answer (each
  option position; each answer string that recurs across items, such as `` Yes`` or `` A``), on the same items;
  the best of them is the majority-class baseline. A model is *competent* at a formulation when it scores above it.
* [`balanced_accuracy()`][tl_steer.eval.controls.balanced_accuracy]: the mean of per-class recall, the class being the
  gold answer (its string when answers recur, else its position): a constant answer scores ``1 / classes``.
* [`answer_distribution()`][tl_steer.eval.controls.answer_distribution]: how often each answer was given, to show a
  method that only moved the model onto another constant answer.
* [`format_compliance()`][tl_steer.eval.controls.format_compliance]: for exact-match formats, the share of greedy
  answers that are one of the options at all.
* [`holm()`][tl_steer.eval.controls.holm]: Holm-adjusted p-values across one table (statsmodels).
* [`minimum_detectable_effect()`][tl_steer.eval.controls.minimum_detectable_effect]: the paired difference a two-sided
  test at ``alpha`` detects with ``power`` at this n.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from ..errors import SteeringError
from .items import MCItem
from .metrics import predictions
from .scoring import ChoiceScores


def _recurring(items: Sequence[MCItem]) -> bool:
    """Whether the items share one option set (`` Yes``/`` No``, `` A``..`` D``): then an answer is its string."""
    return len({it.choices for it in items}) == 1


def answer_key(item: MCItem, index: int, shared: bool) -> str:
    """The name of answer ``index`` of ``item``: its string when the items share one option set, else its position."""
    return repr(item.choices[index].strip()) if shared else f"option {index + 1}"


def constant_answers(items: Sequence[MCItem],
                     strategies: Mapping[str, Callable[[MCItem], int]] | None = None) -> dict[str, float]:
    """``{answer: accuracy}`` of answering without reading the question, on these items.

    * Items that share one option set (`` Yes``/`` No``, `` A``..`` D``, options listed in the prompt): every
      constant answer.
    * Items whose options differ (cloze: each choice is its own text, scored without the others in view): a
      constant *position* means nothing to a log-likelihood scorer (TruthfulQA's file lists the true answers first,
      so "always option 1" would score 100%), so the baseline is ``"random"``: the expected accuracy of a uniform
      choice.
    * ``strategies``: the task's own answer rules that need no reading (``TaskSpec.answer_strategies``; BBQ's
      "always the unknown answer"), each giving the chosen index of an item.

    An item with several correct options counts as right when the answer is one of them."""
    if not items:
        raise SteeringError("constant_answers needs at least one item")
    out: dict[str, float] = {}
    if _recurring(items):
        for j in range(len(items[0].choices)):
            out[answer_key(items[0], j, True)] = sum(it.labels[j] for it in items) / len(items)
    else:
        out["random"] = sum(sum(it.labels) / len(it.labels) for it in items) / len(items)
    for name, pick in (strategies or {}).items():  # an index outside the item (no such answer) counts as wrong
        out[name] = sum(0 <= (j := pick(it)) < len(it.labels) and it.labels[j] == 1 for it in items) / len(items)
    return out


def majority_baseline(items: Sequence[MCItem],
                      strategies: Mapping[str, Callable[[MCItem], int]] | None = None) -> tuple[str, float]:
    """The best of [`constant_answers()`][tl_steer.eval.controls.constant_answers] on these items and its accuracy
    (the majority class when the answers are classes)."""
    return max(constant_answers(items, strategies).items(), key=lambda kv: kv[1])


def balanced_accuracy(items: Sequence[MCItem], predictions: Sequence[int]) -> float:
    """Mean recall over gold classes (the first correct answer's key): ``1 / classes`` for any constant answer when
    every class occurs, 1 for a perfect model."""
    if len(items) != len(predictions) or not items:
        raise SteeringError(f"balanced_accuracy: {len(items)} items but {len(predictions)} predictions")
    shared = _recurring(items)
    hits: dict[str, list[int]] = {}
    for it, p in zip(items, predictions, strict=True):
        hits.setdefault(answer_key(it, it.correct, shared), []).append(int(it.labels[p] == 1))
    return sum(sum(h) / len(h) for h in hits.values()) / len(hits)


def answer_distribution(items: Sequence[MCItem], predictions: Sequence[int]) -> dict[str, float]:
    """``{answer: share of items}`` of the answers given."""
    if len(items) != len(predictions) or not items:
        raise SteeringError(f"answer_distribution: {len(items)} items but {len(predictions)} predictions")
    shared = _recurring(items)
    counts = Counter(answer_key(it, p, shared) for it, p in zip(items, predictions, strict=True))
    return {k: v / len(items) for k, v in sorted(counts.items())}


def format_compliance(items: Sequence[MCItem], greedy: Sequence[str]) -> float:
    """Share of greedy answers (decoded text at the answer position) that are one of the item's options, compared
    stripped and case-insensitively: the part of an exact-match score that is about the format, not the answer."""
    if len(items) != len(greedy) or not items:
        raise SteeringError(f"format_compliance: {len(items)} items but {len(greedy)} greedy answers")
    ok = sum(g.strip().lower() in {c.strip().lower() for c in it.choices} for it, g in zip(items, greedy, strict=True))
    return ok / len(items)


def holm(pvalues: Sequence[float | None], alpha: float = 0.05) -> list[float | None]:
    """Holm-adjusted p-values (``None`` where a test was not run), across one table's tests."""
    from statsmodels.stats.multitest import multipletests

    idx = [i for i, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = [None] * len(pvalues)
    if idx:
        bad = [pvalues[i] for i in idx if not 0.0 <= float(pvalues[i]) <= 1.0]  # type: ignore[arg-type]
        if bad:
            raise SteeringError(f"holm: p-values must lie in [0, 1], got {bad}")
        adjusted = multipletests([float(pvalues[i]) for i in idx], alpha=alpha, method="holm")[1]  # type: ignore[arg-type]
        for i, a in zip(idx, adjusted, strict=True):
            out[i] = float(a)
    return out


def minimum_detectable_effect(n: int, sd_diff: float | None = None, p: float | None = None, alpha: float = 0.05,
                              power: float = 0.8) -> float:
    """The smallest mean paired difference a two-sided test at ``alpha`` detects with ``power`` on ``n`` items:
    ``(z_{1-alpha/2} + z_{power}) * sd_diff / sqrt(n)``. ``sd_diff``: the standard deviation of the per-item
    differences (observed); without it, ``p`` (the base accuracy) gives the bound for two independent 0/1 outcomes,
    ``sd_diff = sqrt(2 p (1 - p))``."""
    from scipy.stats import norm

    if n < 2:
        raise SteeringError(f"minimum_detectable_effect needs n >= 2, got {n}")
    if sd_diff is None:
        if p is None or not 0.0 <= p <= 1.0:
            raise SteeringError(f"minimum_detectable_effect needs sd_diff or a base accuracy p in [0, 1], got p={p!r}")
        sd_diff = math.sqrt(2 * p * (1 - p))
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * sd_diff / math.sqrt(n))


def prediction_controls(items: Sequence[MCItem], predictions: Mapping[str, Sequence[int]],
                        strategies: Mapping[str, Callable[[MCItem], int]] | None = None) -> dict[str, object]:
    """The controls of a sample from the answers given (``{metric: chosen index per item}``, e.g. ``acc`` and
    ``acc_norm``): the constant answers and majority baseline of the items, and per metric the predictions, balanced
    accuracy and distribution of answers. What [`item_controls()`][tl_steer.eval.controls.item_controls] records,
    and what a stored result's predictions give back without re-scoring."""
    constants = constant_answers(items, strategies)
    answer, share = max(constants.items(), key=lambda kv: kv[1])
    out: dict[str, object] = {"constant_answers": constants, "majority": {"answer": answer, "acc": share}}
    for name, preds in predictions.items():
        out[f"predictions_{name}"] = list(preds)
        out[f"balanced_{name}"] = balanced_accuracy(items, preds)
        out[f"answers_{name}"] = answer_distribution(items, preds)
    return out


def item_controls(items: Sequence[MCItem], scores: Sequence[ChoiceScores], metrics: Sequence[str],
                  strategies: Mapping[str, Callable[[MCItem], int]] | None = None) -> dict[str, object]:
    """The controls of one scored sample, as ``evaluate`` records them (``EvalResult.controls``): the constant answers
    and the majority baseline of these items, the model's predictions (top choice by summed log-likelihood, and per
    character when the task reports ``acc_norm``), balanced accuracy and the distribution of answers given for each,
    and for exact-match tasks the format compliance of the greedy answers."""
    if len(items) != len(scores) or not items:
        raise SteeringError(f"item_controls: {len(items)} items but {len(scores)} scores")
    norms = {"acc": "none", **({"acc_norm": "char"} if "acc_norm" in metrics else {})}
    out = prediction_controls(items, {name: predictions(scores, norm) for name, norm in norms.items()}, strategies)
    if "em" in metrics:
        out["format_compliance"] = format_compliance(items, [s.greedy[it.correct] for it, s in zip(items, scores, strict=True)])
    return out
