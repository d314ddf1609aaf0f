"""ITI: Inference-Time Intervention (Li, Patel, Viégas, Pfister & Wattenberg, NeurIPS 2023).

Fitting. Read every attention head's output ``z`` (``attn.hook_z``, before ``W_O``) at the last token of each
contrastive text. For each (layer, head) fit a logistic probe on a seeded, stratified (pair-preserving when the set
is paired) train split and score it on the held-out validation split; keep the top-K heads by validation accuracy
(ties: lower ``(layer, head)`` first). For each kept head the direction is the *mass-mean* direction
``normalize(mean(z | positive) - mean(z | negative))`` and ``std`` the standard deviation of all activations
projected on it.

Update rule: ``z[..., h, :] += alpha * std_h * dir_h`` for the kept heads, at the chosen positions (default every
real token; ``positions="last_prompt+generated"`` matches the reference's KV-cached ``"lt"`` edit location).

Differences from the reference code (github.com/likenneth/honest_llama):

* Probes are L2-regularised logistic regressions fitted by Newton's method in torch on standardised features
  (the reference uses scikit-learn's ``LogisticRegression`` on raw features); deterministic for a given seed.
* The reference splits TruthfulQA by question into train/val and fits directions on train+val; here the same
  (pairs stay on one side of the split when the contrast set is paired), directions use all given texts.
* Directions and stds are computed from the texts' last token only, not all answer tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .. import io
from ..collect import collect
from ..core import HookList, Positions, PositionSpec, scoped
from ..errors import ShapeError, SteeringError
from ..functional.iti import fit_logistic_probes, mass_mean_directions, probe_accuracy, projection_std
from ..pairs import ContrastSet
from ..sites import Site, hook_name, site_of, validate_hook_name
from .vector import AddVector


def split_indices(
    n_pos: int, n_neg: int, val_fraction: float, seed: int, paired: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Seeded stratified split: ``(pos_train, pos_val, neg_train, neg_val)`` index tensors."""
    if not 0.0 < val_fraction < 1.0:
        raise SteeringError(f"val_fraction must be in (0, 1), got {val_fraction}")
    g = torch.Generator().manual_seed(int(seed))
    perm_p = torch.randperm(n_pos, generator=g)
    perm_n = perm_p.clone() if paired and n_pos == n_neg else torch.randperm(n_neg, generator=g)
    vp, vn = max(1, round(n_pos * val_fraction)), max(1, round(n_neg * val_fraction))
    if vp >= n_pos or vn >= n_neg:
        raise SteeringError(
            f"ITI needs at least 2 texts per side to hold out a validation split; got {n_pos} positive and "
            f"{n_neg} negative with val_fraction={val_fraction}"
        )
    return perm_p[vp:], perm_p[:vp], perm_n[vn:], perm_n[:vn]


@io.register("iti")
@dataclass(frozen=True)
class Iti:
    """Fitted ITI: ``heads[i] = (layer, head)`` shifted by ``alpha * stds[i] * directions[i]``.

    ``probe_accuracy[i, h]`` is the validation accuracy of the probe on head ``h`` of layer ``layers[i]``.
    """

    heads: Int[Tensor, "k 2"]
    directions: Float[Tensor, "k d_head"]
    stds: Float[Tensor, "k"]
    alpha: float
    probe_accuracy: Float[Tensor, "layer n_heads"]
    layers: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        k = self.heads.shape[0]
        if self.heads.ndim != 2 or self.heads.shape[1] != 2 or self.directions.shape[0] != k or self.stds.shape != (k,):
            raise ShapeError(
                f"ITI heads {tuple(self.heads.shape)}, directions {tuple(self.directions.shape)} and stds "
                f"{tuple(self.stds.shape)} must be (k, 2), (k, d_head), (k,)"
            )

    @property
    def n_heads(self) -> int:
        return int(self.probe_accuracy.shape[1])

    def hook_names(self) -> list[str]:
        return [hook_name(lay, Site.Z) for lay in sorted({int(x) for x in self.heads[:, 0].tolist()})]

    def shift(self, layer: int) -> Float[Tensor, "n_heads d_head"]:
        """``std * direction`` rows for the kept heads of ``layer``, zeros elsewhere (scaled by ``alpha`` in hooks)."""
        v = torch.zeros(self.n_heads, self.directions.shape[1], dtype=self.directions.dtype, device=self.directions.device)
        for i, (lay, h) in enumerate(self.heads.tolist()):
            if lay == layer:
                v[h] = self.stds[i] * self.directions[i]
        return v

    def hooks(self, model: Any, positions: PositionSpec = Positions.ALL, alpha: float | None = None) -> HookList:
        a = self.alpha if alpha is None else float(alpha)
        out: HookList = []
        for name in self.hook_names():
            validate_hook_name(model, name)
            out.append((name, scoped(AddVector(self.shift(site_of(name)[0]), a), positions, model)))
        return out

    def with_alpha(self, alpha: float) -> Iti:
        return Iti(self.heads, self.directions, self.stds, float(alpha), self.probe_accuracy, self.layers)

    def to(self, device: Any) -> Iti:
        return Iti(self.heads.to(device), self.directions.to(device), self.stds.to(device), self.alpha,
                   self.probe_accuracy.to(device), self.layers)

    def to_state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors = {"heads": self.heads, "directions": self.directions, "stds": self.stds,
                   "probe_accuracy": self.probe_accuracy}
        return tensors, {"alpha": self.alpha, "layers": list(self.layers), "hook_names": self.hook_names()}

    @classmethod
    def from_state(cls, tensors: dict[str, Tensor], config: dict[str, Any]) -> Iti:
        return cls(tensors["heads"].long(), tensors["directions"], tensors["stds"], float(config["alpha"]),
                   tensors["probe_accuracy"], tuple(config["layers"]))

    @classmethod
    def from_activations(
        cls, pos: dict[str, Tensor], neg: dict[str, Tensor], k: int = 8, alpha: float = 5.0,
        val_fraction: float = 0.2, seed: int = 0, paired: bool | None = None, l2: float = 1.0,
    ) -> Iti:
        """Fit from ``hook_z`` activations ``{name: (n, n_heads, d_head)}`` at the last token."""
        if not pos or set(pos) != set(neg):
            raise SteeringError(f"pos and neg must hold the same non-empty hook names, got {sorted(pos)} and {sorted(neg)}")
        by_layer = {}
        for name in pos:
            layer, site = site_of(name)
            if site is not Site.Z:
                raise SteeringError(f"ITI probes attention heads: pass attn.hook_z activations, got {name!r}")
            by_layer[layer] = name
        layers = tuple(sorted(by_layer))
        p = torch.stack([pos[by_layer[lay]].float() for lay in layers], 1)  # (n_pos, L, H, d)
        n = torch.stack([neg[by_layer[lay]].float() for lay in layers], 1)
        if p.ndim != 4 or p.shape[1:] != n.shape[1:]:
            raise ShapeError(f"ITI activations must be (n, n_heads, d_head) per layer, got {tuple(p.shape)} / {tuple(n.shape)}")
        n_pos, n_layers, n_heads, d_head = p.shape
        n_neg = n.shape[0]
        if not isinstance(k, int) or not 1 <= k <= n_layers * n_heads:
            raise SteeringError(f"k must be an int in [1, {n_layers * n_heads}] (layers x heads), got {k!r}")
        paired = (n_pos == n_neg) if paired is None else paired
        ptr, pva, ntr, nva = split_indices(n_pos, n_neg, val_fraction, seed, paired)
        flat_p, flat_n = p.reshape(n_pos, -1, d_head), n.reshape(n_neg, -1, d_head)  # (n, L*H, d)
        x_tr = torch.cat([flat_p[ptr], flat_n[ntr]]).transpose(0, 1)  # (L*H, n_tr, d)
        y_tr = torch.cat([torch.ones(len(ptr)), torch.zeros(len(ntr))])
        x_va = torch.cat([flat_p[pva], flat_n[nva]]).transpose(0, 1)
        y_va = torch.cat([torch.ones(len(pva)), torch.zeros(len(nva))])
        w, b, mu, sd = fit_logistic_probes(x_tr, y_tr, l2=l2)
        acc = probe_accuracy(x_va, y_va, w, b, mu, sd)
        order = torch.sort(acc, descending=True, stable=True).indices[:k]
        dirs = mass_mean_directions(flat_p, flat_n)  # (L*H, d)
        stds = projection_std(torch.cat([flat_p, flat_n]), dirs)
        heads = torch.stack([torch.tensor([layers[int(i) // n_heads], int(i) % n_heads]) for i in order]).long()
        return cls(heads, dirs[order], stds[order], float(alpha), acc.reshape(n_layers, n_heads), layers)

    @classmethod
    @torch.no_grad()
    def from_contrast(
        cls, model: Any, contrast: ContrastSet, k: int = 8, alpha: float = 5.0, layers: Sequence[int] | None = None,
        val_fraction: float = 0.2, seed: int = 0, batch_size: int = 8, progress: bool = False, l2: float = 1.0,
    ) -> Iti:
        """Collect ``hook_z`` at the last token of every text on ``layers`` (default all) and fit."""
        layers = list(range(model.cfg.n_layers)) if layers is None else [int(x) for x in layers]
        names = [hook_name(lay, Site.Z) for lay in layers]
        pos = collect(model, list(contrast.positive), names, positions="last", batch_size=batch_size, progress=progress)
        neg = collect(model, list(contrast.negative), names, positions="last", batch_size=batch_size, progress=progress)
        return cls.from_activations(pos.acts, neg.acts, k=k, alpha=alpha, val_fraction=val_fraction, seed=seed,
                                    paired=contrast.paired, l2=l2)
