"""Fixed, seeded train/val/test splits, stored as index files (indices only, never data).

Each item pool (``truthfulqa`` serves both ``truthfulqa_mc1`` and ``truthfulqa_mc2``) has a committed file
``tl_steer/eval/splits/<pool>.json``::

    {"pool": "truthfulqa", "n": 817, "seed": 0, "fractions": [0.4, 0.1, 0.5],
     "train": [...], "val": [...], "test": [...]}

The indices are a ``torch.randperm(n, generator=Generator().manual_seed(seed))`` cut 40/10/50 (as MAT-Steer does for
TruthfulQA), each part kept in that shuffled order so that ``test[:limit]`` is a random subset. Fitting uses
``train`` only, model or hyper-parameter selection ``val`` only, reported numbers ``test`` only.

The **sealed** split (``splits/sealed.json``, written once by [`write_seal()`][tl_steer.eval.splits.write_seal]) is
the part of each pool's test split that no run before it scored (``test[400:]``), with a SHA-256 of its indices and
rows; ``select(..., "sealed")`` checks the hash. Headline numbers come from one run on it.
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
           split_dir: str | Path | None = None, data_dir: str | Path | None = None) -> list[T]:
    """The items of ``split`` (``train``/``val``/``test``/``all``, or ``sealed``: the items no earlier run scored,
    checked against their committed hash) in the stored order, the first ``limit`` of them."""
    if split == "all":
        chosen = list(items)
    elif split == "sealed":
        chosen = [items[i] for i in sealed_indices(pool, data_dir)]
    else:
        if split not in SPLITS:
            raise SteeringError(f"split must be one of {SPLITS + ('all', 'sealed')}, got {split!r}")
        doc = load_split(pool, len(items), split_dir)
        chosen = [items[i] for i in doc[split]]
    if limit is not None:
        if limit < 1:
            raise SteeringError(f"limit must be >= 1, got {limit}")
        chosen = chosen[:limit]
    return chosen


# ----------------------------------------------------------------------------------------------------------------
# the sealed split

SEAL_FILE = SPLIT_DIR / "sealed.json"
#: test positions below this were scored by earlier runs of this project (test[:50], [:120], [:400], issue 22)
SEAL_START = 400
#: a pool with fewer unseen test items than this gets no sealed split (its numbers could not separate anything)
SEAL_MIN_ITEMS = 100


def seal_digest(pool: str, indices: Sequence[int], data_dir: str | Path | None = None) -> str:
    """SHA-256 of the pool name, the sealed indices and the dataset rows they point to (read by
    [`tl_steer.eval.sources`][tl_steer.eval.sources], so every formulation of the pool shares it): a changed
    dataset or index list no longer matches the committed seal."""
    import hashlib

    from .sources import SOURCES

    rows = SOURCES[pool](data_dir)
    payload = json.dumps([pool, list(indices), [rows[i] for i in indices]], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def write_seal(pools: Sequence[str], data_dir: str | Path | None = None, path: str | Path | None = None,
               start: int = SEAL_START, min_items: int = SEAL_MIN_ITEMS, force: bool = False) -> Path:
    """Seal, per pool, the test items from position ``start`` of the stored test order on (never scored before);
    a pool with fewer than ``min_items`` of them gets none, with the reason. An existing seal file is refused unless
    ``force`` (a seal that moves is no seal)."""
    path = Path(path or SEAL_FILE)
    if path.exists() and not force:
        raise SteeringError(f"{path} exists; a seal is written once (pass force=True only to replace it knowingly)")
    doc: dict[str, Any] = {"rule": f"test[{start}:] of each pool's stored test order; pools with fewer than "
                                   f"{min_items} such items have none", "pools": {}}
    for pool in pools:
        split = load_split(pool)
        rest = split["test"][start:]
        if len(rest) < min_items:
            doc["pools"][pool] = {"indices": [], "why": f"only {len(rest)} test items after position {start} (test has "
                                                        f"{len(split['test'])}); test[:{start}] counts as seen"}
            continue
        doc["pools"][pool] = {"split": "test", "start": start, "indices": rest,
                              "sha256": seal_digest(pool, rest, data_dir)}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def sealed_indices(pool: str, data_dir: str | Path | None = None, path: str | Path | None = None) -> list[int]:
    """The sealed item indices of ``pool``, after checking them against the committed hash."""
    path = Path(path or SEAL_FILE)
    if not path.is_file():
        raise SteeringError(f"no seal file {path}: write_seal(...) creates it once")
    entry = json.loads(path.read_text())["pools"].get(pool)
    if entry is None:
        raise SteeringError(f"pool {pool!r} is not in the seal {path}")
    if not entry["indices"]:
        raise SteeringError(f"pool {pool!r} has no sealed items: {entry['why']}")
    got = seal_digest(pool, entry["indices"], data_dir)
    if got != entry["sha256"]:
        raise SteeringError(
            f"the sealed items of {pool!r} no longer match their hash in {path} ({got[:12]} vs {entry['sha256'][:12]}): "
            "the dataset or the indices changed, so numbers on it are not the sealed ones"
        )
    return list(entry["indices"])
