"""What every task is made of: the multiple-choice item, and reading the local dataset files.

The bottom of ``tl_steer.eval``: [`tl_steer.eval.sources`][tl_steer.eval.sources] reads each dataset with these
helpers, the task loaders build their items from its rows, the scorers score them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..data import default_data_dir
from ..errors import SteeringError

#: MMLU's CSV columns (the files have no header)
MMLU_COLS = ["question", "choice0", "choice1", "choice2", "choice3", "answer"]


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice question.

    ``choices[i]`` is scored as a continuation of ``prompt`` (or of ``prompts[i]`` when the context differs per
    choice, as in WinoGrande's partial scoring). ``labels[i]`` is 1 for a correct/true choice and 0 otherwise.
    """

    prompt: str
    choices: tuple[str, ...]
    labels: tuple[int, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    prompts: tuple[str, ...] | None = None  #: per-choice contexts, overriding ``prompt``

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        object.__setattr__(self, "labels", tuple(int(x) for x in self.labels))
        if self.prompts is not None:
            object.__setattr__(self, "prompts", tuple(self.prompts))
        if len(self.choices) < 2:
            raise SteeringError(f"an MCItem needs at least 2 choices, got {len(self.choices)}: {self.prompt[:60]!r}")
        if len(self.labels) != len(self.choices):
            raise SteeringError(f"{len(self.choices)} choices but {len(self.labels)} labels for {self.prompt[:60]!r}")
        if not any(self.labels):
            raise SteeringError(f"no choice is labelled correct for {self.prompt[:60]!r}")
        if self.prompts is not None and len(self.prompts) != len(self.choices):
            raise SteeringError(f"{len(self.choices)} choices but {len(self.prompts)} per-choice prompts")

    @property
    def correct(self) -> int:
        """Index of the first correct choice."""
        return self.labels.index(1)

    def context(self, i: int) -> str:
        """The context of choice ``i`` (its own prompt when the item has per-choice prompts)."""
        return self.prompts[i] if self.prompts is not None else self.prompt

    def with_prefix(self, prefix: str) -> MCItem:
        """The same item with ``prefix`` (an instruction) in front of every context."""
        prompts = tuple(prefix + p for p in self.prompts) if self.prompts is not None else None
        return replace(self, prompt=prefix + self.prompt, prompts=prompts)


def data_path(data_dir: str | Path | None, *parts: str) -> Path:
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    if not root.is_dir():
        raise SteeringError(
            f"evaluation data directory {root} does not exist; pass --data-dir / data_dir=..., set TL_STEER_DATA, "
            "or check out the datasets as ../shared/data beside the project"
        )
    p = root.joinpath(*parts)
    if not p.exists():
        raise SteeringError(
            f"dataset file {p} is missing (data dir {root}); see {root / parts[0] / 'README.md'} for where it comes "
            "from, or point --data-dir / TL_STEER_DATA at a complete copy"
        )
    return p


def read_rows(kind: str, files: str | Path | Sequence[str | Path], **kwargs: Any) -> list[dict[str, Any]]:
    """Read local json/csv files with ``datasets`` (no Hub access), as a list of dicts in file order."""
    import datasets
    from datasets import load_dataset

    datasets.disable_progress_bars()
    data_files = [str(f) for f in files] if isinstance(files, (list, tuple)) else str(files)
    ds = load_dataset(kind, data_files=data_files, split="train", **kwargs)
    return ds.to_list()


def csv_rows(path: Path, columns: Sequence[str], **kwargs: Any) -> list[dict[str, Any]]:
    from datasets import Features, Value

    feats = Features({c: Value("string") for c in columns})
    return read_rows("csv", path, features=feats, keep_default_na=False, **kwargs)
