"""``evaluate``: score one task's split with or without steering and compute its metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._types import TransformerBridge
from ..aligned import scoring_bos
from ..core import HookList
from ..errors import SteeringError
from .controls import item_controls
from .metrics import Estimate, Paired, compute_metrics, paired, per_item
from .scoring import score_items, score_items_shared
from .splits import select
from .steering import parse_method
from .tasks import get_task, load_task


@dataclass
class EvalResult:
    """One task scored under one condition: metrics with intervals, per-item values and the configuration."""
    task: str
    method: str
    model: str
    split: str
    n: int
    headline: str  #: the task's paper-standard metric
    metrics: dict[str, Estimate]
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)
    per_item: dict[str, list[float]] = field(default_factory=dict)  #: each item's value per metric (paired stats)
    item_ids: list[Any] = field(default_factory=list)  #: which items, in order
    #: what the sample's constant answers score, balanced accuracy, the answers given (``tl_steer.eval.controls``)
    controls: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        """The headline metric's value."""
        return self.metrics[self.headline].value

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``tl-steer eval`` writes)."""
        return {
            "task": self.task, "method": self.method, "model": self.model, "split": self.split, "n": self.n,
            "headline": self.headline, "metrics": {k: v.as_dict() for k, v in self.metrics.items()},
            "seconds": round(self.seconds, 2), "config": self.config,
            "item_ids": self.item_ids, "per_item": {k: [round(x, 6) for x in v] for k, v in self.per_item.items()},
            "controls": self.controls,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalResult:
        """The inverse of [`tl_steer.eval.run.EvalResult.to_dict()`][tl_steer.eval.run.EvalResult.to_dict]."""
        metrics = {
            k: Estimate(v["value"], v["ci95"][0], v["ci95"][1], v["n"], v["ci_method"]) for k, v in d["metrics"].items()
        }
        return cls(d["task"], d["method"], d["model"], d["split"], d["n"], d["headline"], metrics, d["seconds"],
                   d.get("config", {}), d.get("per_item", {}), d.get("item_ids", []), d.get("controls", {}))

    def compare(self, other: EvalResult, metric: str | None = None) -> Paired:
        """``other - self`` on the same items (paired bootstrap interval; McNemar for accuracies)."""
        metric = metric or self.headline
        if (self.task, self.split, self.item_ids) != (other.task, other.split, other.item_ids) or not self.item_ids:
            raise SteeringError(
                f"paired comparison needs both results on the same items: {self.task}/{self.split} "
                f"({len(self.item_ids)} ids) vs {other.task}/{other.split} ({len(other.item_ids)} ids)"
            )
        if metric not in self.per_item or metric not in other.per_item:
            raise SteeringError(f"metric {metric!r} has no per-item values; per-item metrics: {sorted(self.per_item)}")
        return paired(self.per_item[metric], other.per_item[metric], metric)


def evaluate(
    model: TransformerBridge,
    task: str,
    hooks: HookList | None = None,
    *,
    label: str | None = None,
    prompting: bool | None = None,
    method: str | None = None,
    split: str = "test",
    limit: int | None = None,
    data_dir: str | Path | None = None,
    batch_size: int = 8,
    progress: bool = True,
    model_name: str | None = None,
    task_options: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    bos: bool | None = None,
    shared_prompt: bool = False,
    split_dir: str | Path | None = None,
) -> EvalResult:
    """Score ``task``'s ``split`` (first ``limit`` items of the stored seeded order) under ``hooks``.

    Args:
        label: the condition's name, recorded in the result (``result.method``) and its file name; only a name
            (default ``"prompting"`` when ``prompting``, else ``"none"``).
        prompting: put the task's instruction (``TaskSpec.instruction``) in front of every prompt: the prompting
            baseline. The only switch; hooks come from ``hooks`` (``tl_steer.eval.steering.hooks``).
        method: the former spelling, both a label and a switch (``method="prompting"`` meant ``prompting=True``):
            still accepted, with that meaning, when ``label`` and ``prompting`` are not given.
        split_dir: where the pools' split files are (default the package's committed ones; a task of your own can
            keep its own).
    """
    t0 = time.perf_counter()
    spec = get_task(task)
    if method is not None:
        if label is not None or prompting is not None:
            raise SteeringError(f"evaluate({task!r}): pass label=/prompting= or the former method=, not both "
                                f"(got method={method!r}, label={label!r}, prompting={prompting!r})")
        method = parse_method(method)
        label, prompting = method, method == "prompting"
    prompting = bool(prompting)
    label = label if label is not None else ("prompting" if prompting else "none")
    if not isinstance(label, str) or not label.strip():
        raise SteeringError(f"evaluate({task!r}): label must be a non-empty string, got {label!r}")
    items = select(load_task(spec.name, data_dir, **(task_options or {})), spec.pool, split, limit, split_dir,
                   data_dir)
    if prompting:
        items = [it.with_prefix(spec.instruction) for it in items]
    bos = scoring_bos(model) if bos is None else bool(bos)
    scorer = score_items_shared if shared_prompt else score_items  # the same scores (1e-4); prompts run once
    scores = scorer(model, items, hooks, batch_size=batch_size, progress=progress, desc=f"{spec.name}/{label}", bos=bos)
    metrics = compute_metrics(spec, items, scores)
    values = per_item(spec, items, scores)
    controls = item_controls(items, scores, spec.metrics, spec.answer_strategies)
    ids = [it.meta.get("id", i) for i, it in enumerate(items)]
    name = model_name or str(getattr(model.cfg, "model_name", "model"))
    cfg = {"task_options": task_options or {}, "batch_size": batch_size, "limit": limit, "bos": bos,
           "shared_prompt": shared_prompt, "prompting": prompting, **(config or {})}
    return EvalResult(spec.name, label, name, split, len(items), spec.metric, metrics, time.perf_counter() - t0, cfg,
                      values, ids, controls)


@dataclass
class OrderAveraged:
    """A letter-format task scored under every cyclic order of its options (``evaluate_orders``)."""

    results: list[EvalResult]  #: one per rotation (``task_options["rotate"]``), same items
    metric: str
    per_item: list[float]  #: each item's metric averaged over the rotations

    @property
    def value(self) -> float:
        """The order-averaged score: a preference for one letter no longer counts as knowing the answer."""
        return sum(self.per_item) / len(self.per_item)

    @property
    def by_rotation(self) -> list[float]:
        return [r.metrics[self.metric].value for r in self.results]


def evaluate_orders(model: TransformerBridge, task: str, hooks: HookList | None = None, *, metric: str | None = None,
                    task_options: dict[str, Any] | None = None, **kwargs: Any) -> OrderAveraged:
    """[`evaluate()`][tl_steer.eval.run.evaluate] under every cyclic order of the options (the task loader's
    ``rotate`` option: the SADI reference's letter prompts), on the same items, and each item's ``metric`` (default
    the task's headline) averaged over the orders. A model that always answers "A" scores the same in every order
    for what it knows and 1 / k for the rest."""
    import inspect

    spec = get_task(task)
    if "rotate" not in inspect.signature(spec.loader).parameters:
        raise SteeringError(f"task {task!r} lists no options in its prompt (its loader has no 'rotate'); "
                            "order averaging applies to letter formats (sadi_copa, sadi_mmlu, ...)")
    first = load_task(spec.name, kwargs.get("data_dir"), **(task_options or {}))[0]
    results = [evaluate(model, task, hooks, task_options={**(task_options or {}), "rotate": r}, **kwargs)
               for r in range(len(first.choices))]
    metric = metric or spec.metric
    ids = results[0].item_ids
    if any(r.item_ids != ids for r in results):
        raise SteeringError(f"{task}: the rotations scored different items")
    per = [sum(vals) / len(vals) for vals in zip(*(r.per_item[metric] for r in results), strict=True)]
    return OrderAveraged(results, metric, per)
