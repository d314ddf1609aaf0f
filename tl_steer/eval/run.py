"""``evaluate``: score one task's split with or without steering and compute its metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import HookList
from .metrics import Estimate, compute_metrics
from .scoring import score_items
from .splits import select
from .steering import parse_method
from .tasks import get_task, load_task


@dataclass
class EvalResult:
    task: str
    method: str
    model: str
    split: str
    n: int
    headline: str  #: the task's paper-standard metric
    metrics: dict[str, Estimate]
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        return self.metrics[self.headline].value

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "method": self.method, "model": self.model, "split": self.split, "n": self.n,
            "headline": self.headline, "metrics": {k: v.as_dict() for k, v in self.metrics.items()},
            "seconds": round(self.seconds, 2), "config": self.config,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalResult:
        metrics = {
            k: Estimate(v["value"], v["ci95"][0], v["ci95"][1], v["n"], v["ci_method"]) for k, v in d["metrics"].items()
        }
        return cls(d["task"], d["method"], d["model"], d["split"], d["n"], d["headline"], metrics, d["seconds"],
                   d.get("config", {}))


def evaluate(
    model: Any,
    task: str,
    hooks: HookList | None = None,
    *,
    method: str = "none",
    split: str = "test",
    limit: int | None = None,
    data_dir: str | Path | None = None,
    batch_size: int = 8,
    progress: bool = True,
    model_name: str | None = None,
    task_options: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
) -> EvalResult:
    """Score ``task``'s ``split`` (first ``limit`` items of the stored seeded order) under ``hooks``.

    ``method="prompting"`` puts the task's instruction in front of every prompt (no hooks needed); any other method
    name is only a label for the result: pass its hooks (``tl_steer.eval.steering.hooks``).
    """
    t0 = time.perf_counter()
    spec = get_task(task)
    method = parse_method(method)
    items = select(load_task(spec.name, data_dir, **(task_options or {})), spec.pool, split, limit)
    if method == "prompting":
        items = [it.with_prefix(spec.instruction) for it in items]
    scores = score_items(model, items, hooks, batch_size=batch_size, progress=progress, desc=f"{spec.name}/{method}")
    metrics = compute_metrics(spec.name, items, scores)
    name = model_name or str(getattr(model.cfg, "model_name", "model"))
    cfg = {"task_options": task_options or {}, "batch_size": batch_size, "limit": limit, **(config or {})}
    return EvalResult(spec.name, method, name, split, len(items), spec.metric, metrics, time.perf_counter() - t0, cfg)
