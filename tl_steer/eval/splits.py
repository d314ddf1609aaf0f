"""Fixed, seeded train/val/test splits, stored as index files (indices only, never data).

Each item pool (``truthfulqa`` serves both ``truthfulqa_mc1`` and ``truthfulqa_mc2``) has a committed file
``tl_steer/eval/splits/<pool>.json``::

    {"pool": "truthfulqa", "n": 817, "seed": 0, "fractions": [0.4, 0.1, 0.5],
     "train": [...], "val": [...], "test": [...]}

The indices are a ``torch.randperm(n, generator=Generator().manual_seed(seed))`` cut 40/10/50 (as MAT-Steer does for
TruthfulQA), each part kept in that shuffled order so that ``test[:limit]`` is a random subset. Fitting uses
``train`` only, model or hyper-parameter selection ``val`` only, reported numbers ``test`` only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from ..errors import SteeringError

SPLIT_DIR = Path(__file__).resolve().parent / "splits"
FRACTIONS = (0.4, 0.1, 0.5)
SPLITS = ("train", "val", "test")
T = TypeVar("T")


def make_split(n: int, seed: int = 0, fractions: Sequence[float] = FRACTIONS) -> dict[str, list[int]]:
    """Disjoint ``train``/``val``/``test`` index lists covering ``range(n)``, from a seeded permutation."""
    if n < 3:
        raise SteeringError(f"need at least 3 items to split, got {n}")
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise SteeringError(f"fractions must be 3 non-negative numbers summing to 1, got {tuple(fractions)}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return {"train": perm[:n_train], "val": perm[n_train: n_train + n_val], "test": perm[n_train + n_val:]}


def split_path(pool: str, split_dir: str | Path | None = None) -> Path:
    """The index file of a pool's split."""
    return Path(split_dir or SPLIT_DIR) / f"{pool}.json"


def write_split(pool: str, n: int, seed: int = 0, fractions: Sequence[float] = FRACTIONS,
                split_dir: str | Path | None = None) -> Path:
    """Write a pool's seeded split file (``tl-steer splits``)."""
    path = split_path(pool, split_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"pool": pool, "n": n, "seed": seed, "fractions": list(fractions), **make_split(n, seed, fractions)}
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    return path


def load_split(pool: str, n: int | None = None, split_dir: str | Path | None = None) -> dict[str, Any]:
    """The stored split of ``pool``; with ``n``, check it was made for a pool of that size."""
    path = split_path(pool, split_dir)
    if not path.is_file():
        raise SteeringError(
            f"no split file {path} for {pool!r}; create it with tl_steer.eval.splits.write_split({pool!r}, n) "
            "or `tl-steer splits`"
        )
    doc = json.loads(path.read_text())
    if n is not None and doc["n"] != n:
        raise SteeringError(
            f"split file {path} was made for {doc['n']} items but the {pool!r} data has {n}; the data changed: "
            "regenerate the split (`tl-steer splits --force`) and say so, since reported numbers move"
        )
    return doc


def select(items: Sequence[T], pool: str, split: str, limit: int | None = None,
           split_dir: str | Path | None = None) -> list[T]:
    """The items of ``split`` (``train``/``val``/``test``/``all``) in the stored order, the first ``limit`` of them."""
    if split == "all":
        chosen = list(items)
    else:
        if split not in SPLITS:
            raise SteeringError(f"split must be one of {SPLITS + ('all',)}, got {split!r}")
        doc = load_split(pool, len(items), split_dir)
        chosen = [items[i] for i in doc[split]]
    if limit is not None:
        if limit < 1:
            raise SteeringError(f"limit must be >= 1, got {limit}")
        chosen = chosen[:limit]
    return chosen
