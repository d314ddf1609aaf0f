"""Evaluation harness: tasks as multiple-choice items, batched log-likelihood scoring (with steering), seeded
splits, contrastive-pair builders, metrics with 95% intervals, and JSON / markdown / plot reports.

See ``docs/evaluation.md``.
"""

from .metrics import Estimate, compute_metrics, wilson
from .pairs import build_contrast, contrast_from_items
from .run import EvalResult, evaluate
from .scoring import ChoiceScores, score_choices, score_items
from .splits import load_split, make_split, select
from .tasks import MAT_STEER_TASKS, TASKS, MCItem, get_task, load_task

__all__ = [
    "MAT_STEER_TASKS", "TASKS", "ChoiceScores", "Estimate", "EvalResult", "MCItem", "build_contrast",
    "compute_metrics", "contrast_from_items", "evaluate", "get_task", "load_split", "load_task", "make_split",
    "score_choices", "score_items", "select", "wilson",
]
