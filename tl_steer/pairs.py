"""Contrastive sets: the common input of every fitted steering method.

A [`ContrastSet`][tl_steer.pairs.ContrastSet] holds full texts (prompt + answer) for one attribute. ``positive`` is always the
*desirable* side (truthful, non-toxic, unbiased); ``negative`` the side to steer away from. Polarity is explicit so
that labels such as ToxiGen's (where 1 means toxic) cannot silently steer the wrong way: build sets with
[`from_labels()`][tl_steer.pairs.from_labels] and say which label is desirable.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from .errors import SteeringError


@dataclass(frozen=True)
class ContrastSet:
    """Texts of one attribute: ``positive`` is the side to steer TOWARD (desirable), ``negative`` the side to steer
    away from. ``groups`` (optional) gives each text's source, e.g. its question: ``(positive_groups,
    negative_groups)``; methods that hold out a validation split (ITI's probes) keep a group on one side."""

    attribute: str
    positive: tuple[str, ...]  #: desirable texts
    negative: tuple[str, ...]  #: undesirable texts
    groups: tuple[tuple[Hashable, ...], tuple[Hashable, ...]] | None = None
    #: whether ``positive[i]`` and ``negative[i]`` are a pair (share a prompt), as the builder knows it; ``None``:
    #: not declared, taken as paired when both sides have as many texts (see [`paired`][tl_steer.pairs.ContrastSet.paired])
    pairing: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "positive", tuple(self.positive))
        object.__setattr__(self, "negative", tuple(self.negative))
        if self.groups is not None:
            gp, gn = (tuple(g) for g in self.groups)
            if len(gp) != len(self.positive) or len(gn) != len(self.negative):
                raise SteeringError(
                    f"contrast set {self.attribute!r}: groups must give one group per text, got {len(gp)} for "
                    f"{len(self.positive)} positive and {len(gn)} for {len(self.negative)} negative texts"
                )
            object.__setattr__(self, "groups", (gp, gn))
        if not self.positive or not self.negative:
            raise SteeringError(
                f"contrast set {self.attribute!r} needs positive and negative texts, got "
                f"{len(self.positive)} positive and {len(self.negative)} negative"
            )
        for side in (self.positive, self.negative):
            for t in side:
                if not isinstance(t, str):
                    raise SteeringError(f"contrast set {self.attribute!r} holds a {type(t).__name__}, expected str")
        if self.pairing not in (None, True, False):
            raise SteeringError(f"contrast set {self.attribute!r}: pairing must be True, False or None, got {self.pairing!r}")
        if self.pairing and len(self.positive) != len(self.negative):
            raise SteeringError(
                f"contrast set {self.attribute!r} is declared paired but has {len(self.positive)} positive and "
                f"{len(self.negative)} negative texts"
            )

    @property
    def paired(self) -> bool:
        """Whether ``positive[i]`` and ``negative[i]`` are a pair: what the builder declared (``pairing``), or, when
        it declared nothing, whether both sides have as many texts (the only thing a count can tell)."""
        if self.pairing is not None:
            return self.pairing
        return len(self.positive) == len(self.negative)


def from_labels(
    attribute: str, texts: Sequence[str], labels: Sequence[int | bool | str], desirable: int | bool | str
) -> ContrastSet:
    """Split labelled texts: label == ``desirable`` goes to ``positive``, everything else to ``negative``."""
    if len(texts) != len(labels):
        raise SteeringError(f"{len(texts)} texts but {len(labels)} labels for {attribute!r}")
    if desirable not in set(labels):
        raise SteeringError(
            f"desirable label {desirable!r} does not occur in the labels of {attribute!r} ({sorted(set(map(str, labels)))})"
        )
    pos = [t for t, lab in zip(texts, labels, strict=True) if lab == desirable]
    neg = [t for t, lab in zip(texts, labels, strict=True) if lab != desirable]
    return ContrastSet(attribute, tuple(pos), tuple(neg), pairing=False)
