"""Gate selectivity of a gated method (MAT-Steer), measured as the paper shows it.

The paper reports a mean gate of 0.61 on toxic ParaDetox inputs for the toxicity attribute, against 0.14 for the
unrelated attributes. [`gate_selectivity()`][tl_steer.eval.gates.gate_selectivity] measures, for every attribute's gate and every evaluation set
(held-out positive and negative texts of each task, and ParaDetox's toxic sentences vs their neutral paraphrases),
the mean gate on each side and the AUC that a gate is higher on the negative (undesirable) text than on the positive
one. An AUC of 0.5 is a gate that does not tell the sides apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._types import TransformerBridge
from ..collect import collect
from ..errors import SteeringError
from ..pairs import ContrastSet
from .sources import paradetox_rows


def load_paradetox(data_dir: str | Path | None = None, limit: int | None = 200, seed: int = 0) -> ContrastSet:
    """ParaDetox: neutral paraphrases (positive) vs their toxic source sentences (negative), paired, seeded subset."""
    rows = paradetox_rows(data_dir)
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed)).tolist()
    rows = [rows[i] for i in order[: limit or len(rows)]]
    return ContrastSet("paradetox", tuple(r["neutral1"].strip() for r in rows), tuple(r["toxic"].strip() for r in rows))


def auc(negative: Sequence[float], positive: Sequence[float]) -> float:
    """P(a negative-side value exceeds a positive-side one), ties counted half (Mann-Whitney)."""
    if not negative or not positive:
        return float("nan")
    n = torch.tensor(negative, dtype=torch.float64)[:, None]
    p = torch.tensor(positive, dtype=torch.float64)[None, :]
    return float(((n > p).double() + 0.5 * (n == p).double()).mean())


@dataclass(frozen=True)
class GateRow:
    """Gate selectivity of one attribute on one evaluation set (AUC and mean gate on each side)."""
    attribute: str  #: whose gate
    eval_set: str  #: on which texts
    mean_positive: float
    mean_negative: float
    auc: float  #: negative > positive
    n_positive: int
    n_negative: int

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dict(self.__dict__)


@torch.no_grad()
def gate_selectivity(
    model: TransformerBridge, method: Any, sets: Mapping[str, ContrastSet], batch_size: int = 8, read: str = "last"
) -> list[GateRow]:
    """Mean gate per attribute on each set's positive and negative texts (read at the method's hook) and the AUC."""
    if not callable(getattr(method, "gates", None)):
        raise SteeringError(f"{type(method).__name__} has no gates(); gate selectivity needs a gated method")
    name = method.hook_names()[0]
    rows: list[GateRow] = []
    for set_name, cs in sets.items():
        g = {}
        for side, texts in (("positive", cs.positive), ("negative", cs.negative)):
            acts = collect(model, list(texts), name, read=read, batch_size=batch_size, progress=False).acts[name]
            gates = method.gates(acts.to(method.theta.device)[:, None])  # (n, 1, attr) or (n, 1, head, attr)
            g[side] = gates.reshape(gates.shape[0], -1, gates.shape[-1]).mean(1).cpu()  # (n, attr)
        for t, attr in enumerate(method.attributes):
            pos, neg = g["positive"][:, t].tolist(), g["negative"][:, t].tolist()
            rows.append(GateRow(attr, set_name, sum(pos) / len(pos), sum(neg) / len(neg), auc(neg, pos),
                                len(pos), len(neg)))
    return rows


def plot_gates(rows: Sequence[GateRow], path: str | Path, title: str = "") -> Path:
    """Heatmaps of the mean gate on negative texts and of the AUC (attributes x evaluation sets)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    attrs = list(dict.fromkeys(r.attribute for r in rows))
    sets = list(dict.fromkeys(r.eval_set for r in rows))
    by = {(r.attribute, r.eval_set): r for r in rows}
    fig, axes = plt.subplots(1, 2, figsize=(3.2 + 1.4 * len(sets), 1.2 + 0.7 * len(attrs)), constrained_layout=True)
    for ax, key, label, vmax in ((axes[0], "mean_negative", "mean gate, negative texts", 1.0),
                                 (axes[1], "auc", "AUC (negative > positive)", 1.0)):
        data = [[getattr(by[(a, s)], key) for s in sets] for a in attrs]
        im = ax.imshow(data, vmin=0.0, vmax=vmax, cmap="viridis")
        ax.set_xticks(range(len(sets)), sets, rotation=30, ha="right")
        ax.set_yticks(range(len(attrs)), [f"gate: {a}" for a in attrs])
        for i, row in enumerate(data):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.6 else "k", fontsize=8)
        ax.set_title(label, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=9)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
