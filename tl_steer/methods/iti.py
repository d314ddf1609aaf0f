"""ITI: Inference-Time Intervention (Li, Patel, Viégas, Pfister & Wattenberg, NeurIPS 2023).

Fitting. Read every attention head's output ``z`` (``attn.hook_z``, before ``W_O``) at the last token of each
contrastive text. For each (layer, head) fit a logistic probe on a seeded, stratified (pair-preserving when the set
is paired) train split and score it on the held-out validation split; keep the top-K heads by validation accuracy
(ties: lower ``(layer, head)`` first). For each kept head the direction is the *mass-mean* direction
``normalize(mean(z | positive) - mean(z | negative))`` and ``std`` the standard deviation of all activations
projected on it.

Update rule: ``z[..., h, :] += alpha * std_h * dir_h`` (``alpha`` is the method's ``strength``) for the kept heads, at the chosen positions (default every
real token; ``positions="last_prompt+generated"`` matches the reference's KV-cached ``"lt"`` edit location).

Differences from the reference code (github.com/likenneth/honest_llama):

* Probes are L2-regularised logistic regressions fitted by Newton's method in torch on standardised features
  (the reference uses scikit-learn's ``LogisticRegression`` on raw features); deterministic for a given seed.
* The reference splits TruthfulQA by question into train/val and fits directions on train+val; here the same
  when the contrast set has ``groups`` (``tl_steer.eval`` gives every text its question), else pairs stay on one side
  of the split. Directions use all given texts.
* The reference keeps K = 48 of LLaMA-7B's 1,024 heads (4.7%) at alpha = 15. Here K and alpha are chosen per model on
  validation data; 4.7% of SmolLM2's 270 heads is 13.
* Directions and stds are computed from the texts' last token only, not all answer tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .._types import TransformerBridge
from ..core import HookList, PositionSpec, saved_strength
from ..errors import ShapeError, SteeringError, ensure_finite
from ..functional import split_indices
from ..functional.iti import fit_logistic_probes, mass_mean_directions, probe_accuracy, projection_std
from ..pairs import ContrastSet
from ..protocol import AffineEdit
from ..registry import (
    Described,
    FitOption,
    FitOptions,
    MethodSpec,
    is_paired,
    pooled,
    pooled_groups,
    read_activations,
    site_norms,
)
from ..sites import Site, hook_name, site_of
from .vector import SteeringVectors


@dataclass(frozen=True)
class ProbeReport:
    """What ITI's probes found: kept ``heads[i] = (layer, head)``, their directions and projection stds, and the
    validation accuracy ``probe_accuracy[i, h]`` of every probed head ``h`` of layer ``layers[i]`` (plot it)."""

    heads: Int[Tensor, "k 2"]
    directions: Float[Tensor, "k d_head"]
    stds: Float[Tensor, "k"]
    probe_accuracy: Float[Tensor, "layer n_heads"]
    layers: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        ensure_finite({"directions": self.directions, "stds": self.stds}, "ProbeReport")
        k = self.heads.shape[0]
        if self.heads.ndim != 2 or self.heads.shape[1] != 2 or self.directions.shape[0] != k or self.stds.shape != (k,):
            raise ShapeError(
                f"ITI heads {tuple(self.heads.shape)}, directions {tuple(self.directions.shape)} and stds "
                f"{tuple(self.stds.shape)} must be (k, 2), (k, d_head), (k,)"
            )

    def shifts(self) -> dict[str, Tensor]:
        """``{hook_z name: (n_heads, d_head)}``: ``std * direction`` on the kept heads of each layer, zeros elsewhere."""
        n_heads, d_head = int(self.probe_accuracy.shape[1]), int(self.directions.shape[1])
        out: dict[str, Tensor] = {}
        for i, (layer, head) in enumerate(self.heads.tolist()):
            name = hook_name(int(layer), Site.Z)
            v = out.setdefault(name, torch.zeros(n_heads, d_head, dtype=self.directions.dtype))
            v[head] = self.stds[i] * self.directions[i]
        return dict(sorted(out.items(), key=lambda kv: site_of(kv[0])[0]))


@dataclass(frozen=True, repr=False)
class Iti(Described):
    """Fitted ITI: its apply side is a [`SteeringVectors`][tl_steer.methods.vector.SteeringVectors] on ``attn.hook_z`` (strength = alpha), and
    ``report`` holds the probe results."""

    vectors: SteeringVectors
    report: ProbeReport
    method: ClassVar[str] = "iti"
    state: ClassVar[str] = "iti"

    @property
    def strength(self) -> float:
        """The strength of the added vectors (ITI's alpha)."""
        return self.vectors.strength

    def _norms(self) -> str:
        return f"heads={[tuple(h) for h in self.report.heads.tolist()][:4]}{'…' if len(self.report.heads) > 4 else ''}"

    # the report's fields, for convenience
    heads = property(lambda self: self.report.heads)
    directions = property(lambda self: self.report.directions)
    stds = property(lambda self: self.report.stds)
    probe_accuracy = property(lambda self: self.report.probe_accuracy)
    layers = property(lambda self: self.report.layers)

    def hook_names(self) -> list[str]:
        """The hooks this method edits, in layer order."""
        return self.vectors.hook_names()

    def hooks(self, model: TransformerBridge, positions: PositionSpec | None = None, strength: float | None = None) -> HookList:
        """Hooks that shift the kept heads' outputs: ``z_h + alpha * std_h * dir_h`` (``alpha`` is the strength).

        Args:
            model: the ``TransformerBridge`` the hooks will run on (its hook names are checked).
            positions: which tokens to edit: a scope such as ``"all"`` (default: every real token, never padding),
                ``"prompt"``, ``"last_prompt"``, ``"generated"``, ``"last"``, or a union ``"last_prompt+generated"``.
            strength: overrides the fitted strength for these hooks only; a ``(batch,)`` tensor or list gives each
                batch row its own strength (a sweep in one batch).

        Returns:
            TransformerLens' own hook list ``[(hook_name, fn), ...]``: pass it to
            [`tl_steer.steer()`][tl_steer.steer], ``model.hooks(fwd_hooks=...)`` or ``run_with_hooks``.
        """
        return self.vectors.hooks(model, positions, strength)

    def affine_edits(self, strength: float | None = None) -> dict[str, AffineEdit]:
        """The per-head shifts ``alpha * std_h * dir_h`` at ``hook_z`` (for export)."""
        return self.vectors.affine_edits(strength)

    def with_strength(self, strength: float) -> Iti:
        """The same fitted method at another strength (no refitting)."""
        return replace(self, vectors=self.vectors.with_strength(strength))

    def relative(self, fraction: float) -> Iti:
        """Alpha such that the shift's norm is ``fraction`` of the mean ``hook_z`` norm (see SteeringVectors)."""
        return replace(self, vectors=self.vectors.relative(fraction))

    def to(self, device: Any) -> Iti:
        """The same method with its tensors on ``device``."""
        return replace(self, vectors=self.vectors.to(device))

    def to_state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """``(tensors, config)`` for [`tl_steer.io.save()`][tl_steer.io.save]: the tensors go to safetensors, the config to JSON."""
        r = self.report
        tensors = {"heads": r.heads, "directions": r.directions, "stds": r.stds, "probe_accuracy": r.probe_accuracy}
        return tensors, {"strength": self.strength, "layers": list(r.layers), "hook_names": self.hook_names(),
                         "site_norms": dict(self.vectors.site_norms)}

    @classmethod
    def from_state(cls, tensors: dict[str, Tensor], config: dict[str, Any]) -> Iti:
        """The inverse of [`tl_steer.methods.iti.Iti.to_state()`][tl_steer.methods.iti.Iti.to_state] (what [`tl_steer.io.load_method()`][tl_steer.io.load_method] calls)."""
        report = ProbeReport(tensors["heads"].long(), tensors["directions"], tensors["stds"],
                             tensors["probe_accuracy"], tuple(config["layers"]))
        strength = saved_strength(config, "alpha")  # format 1 said alpha
        norms = {str(k): float(v) for k, v in (config.get("site_norms") or {}).items()}
        return cls(SteeringVectors(report.shifts(), strength, cls.method, norms), report)

    @classmethod
    def from_activations(
        cls, positive: dict[str, Tensor], negative: dict[str, Tensor], k: int = 8, strength: float = 5.0,
        val_fraction: float = 0.2, seed: int = 0, paired: bool | None = None, l2: float = 1.0,
        groups: tuple[Sequence[Any], Sequence[Any]] | None = None,
    ) -> Iti:
        """Fit from ``hook_z`` activations ``{name: (n, n_heads, d_head)}`` at the last token (``strength``: alpha).

        ``groups`` (one per positive and per negative text, e.g. the question) keep each group on one side of the
        probes' train/validation split, as the reference splits TruthfulQA by question; otherwise pairs stay
        together when ``paired``."""
        pos, neg = positive, negative
        if not pos or set(pos) != set(neg):
            raise SteeringError(
                f"positive and negative must hold the same non-empty hook names, got {sorted(pos)} and {sorted(neg)}"
            )
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
        ensure_finite({"positive": p, "negative": n}, "ITI")
        if torch.equal(p.mean(0), n.mean(0)):
            raise SteeringError(
                "ITI: positive and negative head activations have the same mean, so every direction would be zero "
                "(identical texts on both sides?); check the contrast set"
            )
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_layers * n_heads:
            raise SteeringError(f"k must be an int in [1, {n_layers * n_heads}] (layers x heads), got {k!r}")
        paired = (n_pos == n_neg) if paired is None else paired
        if groups is not None:
            ptr, pva, ntr, nva = group_split(groups[0], groups[1], val_fraction, seed)
        else:
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
        report = ProbeReport(heads, dirs[order], stds[order], acc.reshape(n_layers, n_heads), layers)
        vectors = report.shifts()
        return cls(SteeringVectors(vectors, strength, cls.method, site_norms({k: pos[k] for k in vectors},
                                                                            {k: neg[k] for k in vectors})), report)

    @classmethod
    @torch.no_grad()
    def from_contrast(
        cls, model: TransformerBridge, contrast: ContrastSet, k: int = 8, strength: float = 5.0, layers: Sequence[int] | None = None,
        val_fraction: float = 0.2, seed: int = 0, batch_size: int = 8, progress: bool = False, l2: float = 1.0,
    ) -> Iti:
        """Collect ``hook_z`` at the last token of every text on ``layers`` (default all) and fit."""
        layers = list(range(model.cfg.n_layers)) if layers is None else [int(x) for x in layers]
        names = [hook_name(lay, Site.Z) for lay in layers]
        pos, neg = read_activations(model, [contrast], names, FitOptions(read_batch_size=batch_size, progress=progress))
        a = contrast.attribute
        return cls.from_activations(pos[a], neg[a], k=k, strength=strength, val_fraction=val_fraction, seed=seed,
                                    paired=contrast.paired, l2=l2, groups=contrast.groups)


def group_split(
    pos_groups: Sequence[Any], neg_groups: Sequence[Any], val_fraction: float, seed: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(pos_train, pos_val, neg_train, neg_val)``: seeded, whole groups to validation until it holds at least
    ``val_fraction`` of the texts; no group is on both sides."""
    if not 0.0 < val_fraction < 1.0:
        raise SteeringError(f"val_fraction must be in (0, 1), got {val_fraction}")
    uniq = list(dict.fromkeys([*pos_groups, *neg_groups]))
    order = torch.randperm(len(uniq), generator=torch.Generator().manual_seed(int(seed))).tolist()
    total, want, held = len(pos_groups) + len(neg_groups), val_fraction * (len(pos_groups) + len(neg_groups)), set()
    count = {g: 0 for g in uniq}
    for g in [*pos_groups, *neg_groups]:
        count[g] += 1
    n_val = 0
    for i in order:
        if n_val >= want:
            break
        held.add(uniq[i])
        n_val += count[uniq[i]]
    pva = [i for i, g in enumerate(pos_groups) if g in held]
    nva = [i for i, g in enumerate(neg_groups) if g in held]
    ptr = [i for i, g in enumerate(pos_groups) if g not in held]
    ntr = [i for i, g in enumerate(neg_groups) if g not in held]
    if not (pva and nva and ptr and ntr) or n_val >= total:
        raise SteeringError(
            f"a by-group validation split needs both classes on both sides; got {len(ptr)}/{len(pva)} positive and "
            f"{len(ntr)}/{len(nva)} negative (train/val) from {len(uniq)} groups; use more groups or val_fraction"
        )
    return tuple(torch.tensor(x, dtype=torch.long) for x in (ptr, pva, ntr, nva))  # type: ignore[return-value]


def _reads(model: TransformerBridge, opts: FitOptions) -> list[str]:
    return [hook_name(layer, Site.Z) for layer in range(model.cfg.n_layers)]


SPEC = MethodSpec(
    name="iti",
    summary="ITI: z_h + s*std_h*dir_h on the K heads whose linear probes separate the contrast best",
    cls=Iti,
    reads=_reads,
    fit=lambda positive, negative, opts, ctx: Iti.from_activations(
        pooled(positive), pooled(negative), k=opts.k_or(8), seed=opts.seed, paired=is_paired(positive, negative, ctx),
        groups=pooled_groups(positive, ctx), **opts.extra,
    ),
    strength="s is alpha, in units of each head's projection std",
    default_positions="all",
    grid=(2.5, 5.0, 10.0, 15.0),
    options=(FitOption("val_fraction", float, "share of the contrast pairs held out to rank the probes"),),
)
