"""ITI: per-head probes on a planted direction, head selection, the edit, determinism, save/load."""

from __future__ import annotations

import pytest
import torch

from tl_steer import io, steer
from tl_steer.errors import SteeringError
from tl_steer.functional.iti import fit_logistic_probes, probe_accuracy
from tl_steer.methods.iti import Iti, split_indices
from tl_steer.pairs import ContrastSet

L, H, D, N = 3, 4, 16, 60
PLANTED = [(2, 1), (0, 3)]


def _planted(seed=0, strength=2.5):
    """z activations where heads (2, 1) and (0, 3) carry the label along a fixed direction, the others noise."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(D, generator=g)
    direction = direction / direction.norm()
    acts = {}
    for side, sign in (("pos", 1.0), ("neg", -1.0)):
        acts[side] = {f"blocks.{lay}.attn.hook_z": torch.randn(N, H, D, generator=g) for lay in range(L)}
        for lay, h in PLANTED:
            acts[side][f"blocks.{lay}.attn.hook_z"][:, h] += sign * strength * direction
    return acts["pos"], acts["neg"], direction


def test_probe_accuracy_beats_chance_on_planted_heads_only():
    pos, neg, direction = _planted()
    iti = Iti.from_activations(pos, neg, k=2, strength=3.0, val_fraction=0.25, seed=0)
    acc = iti.probe_accuracy
    assert acc.shape == (L, H)
    for lay, h in PLANTED:
        assert acc[lay, h] >= 0.9, acc
    others = torch.ones(L, H, dtype=torch.bool)
    for lay, h in PLANTED:
        others[lay, h] = False
    assert acc[others].mean() < 0.7, acc  # noise heads sit near chance (0.5)
    assert sorted(map(tuple, iti.heads.tolist())) == sorted(PLANTED)
    cos = iti.directions @ direction
    assert bool((cos > 0.9).all()), cos  # mass-mean direction recovers the planted one (and its sign)
    assert iti.hook_names() == ["blocks.0.attn.hook_z", "blocks.2.attn.hook_z"]


def test_std_is_the_std_of_projections():
    pos, neg, _ = _planted()
    iti = Iti.from_activations(pos, neg, k=1)
    lay, h = iti.heads[0].tolist()
    name = f"blocks.{lay}.attn.hook_z"
    proj = torch.cat([pos[name][:, h], neg[name][:, h]]) @ iti.directions[0]
    torch.testing.assert_close(iti.stds[0], proj.std())


def test_same_seed_same_result_and_split_is_stratified():
    pos, neg, _ = _planted()
    a = Iti.from_activations(pos, neg, k=3, seed=7)
    b = Iti.from_activations(pos, neg, k=3, seed=7)
    assert torch.equal(a.heads, b.heads) and torch.equal(a.probe_accuracy, b.probe_accuracy)
    assert torch.equal(a.directions, b.directions)
    ptr, pva, ntr, nva = split_indices(10, 10, 0.2, seed=3, paired=True)
    assert torch.equal(pva, nva) and len(pva) == 2 and set(ptr.tolist()).isdisjoint(pva.tolist())
    assert not torch.equal(split_indices(10, 10, 0.2, 3, True)[1], split_indices(10, 10, 0.2, 4, True)[1])


def test_logistic_probe_separates_linearly_separable_data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 40, 5, generator=g)
    y = (x[0, :, 0] > 0).float()  # probe 0 separable, probe 1 sees the same labels on noise
    x[1] = torch.randn(40, 5, generator=g)
    w, b, mu, sd = fit_logistic_probes(x, y, l2=0.1)
    acc = probe_accuracy(x, y, w, b, mu, sd)
    assert acc[0] == 1.0 and acc[1] < 0.9


def test_errors():
    pos, neg, _ = _planted()
    with pytest.raises(SteeringError, match=r"k must be an int in \[1, 12\]"):
        Iti.from_activations(pos, neg, k=13)
    with pytest.raises(SteeringError, match="attn.hook_z"):
        Iti.from_activations({"blocks.0.hook_resid_post": torch.zeros(4, 8)}, {"blocks.0.hook_resid_post": torch.zeros(4, 8)})
    with pytest.raises(SteeringError, match="val_fraction"):
        Iti.from_activations(pos, neg, val_fraction=1.0)
    with pytest.raises(SteeringError, match="at least 2 texts per side"):
        split_indices(1, 1, 0.5, 0, True)


CONTRAST = ContrastSet(
    "sentiment",
    ("I love it", "great day", "happy words", "lovely film", "kind people", "good food"),
    ("I hate it", "awful day", "angry words", "horrid film", "cruel people", "bad food"),
)


def test_hooks_shift_only_selected_heads(tiny):
    iti = Iti.from_contrast(tiny, CONTRAST, k=2, strength=4.0, val_fraction=0.34, seed=0)
    assert iti.probe_accuracy.shape == (2, 4) and iti.heads.shape == (2, 2)
    x = ["some prompt", "hi"]
    names = [f"blocks.{lay}.attn.hook_z" for lay in (0, 1)]
    _, base = tiny.run_with_cache(x, names_filter=names, padding_side="left")
    with steer(tiny, iti.hooks(tiny, positions="last_prompt")):
        _, cache = tiny.run_with_cache(x, names_filter=names, padding_side="left")
    low = min(iti.heads[:, 0].tolist())  # the lowest edited layer's z is not affected by the other edits
    zl, bl = cache[f"blocks.{low}.attn.hook_z"], base[f"blocks.{low}.attn.hook_z"]
    chosen = {h: i for i, (lay, h) in enumerate(iti.heads.tolist()) if lay == low}
    for h in range(4):
        if h in chosen:
            i = chosen[h]
            want = (4.0 * iti.stds[i] * iti.directions[i]).expand(2, -1)
            torch.testing.assert_close(zl[:, -1, h] - bl[:, -1, h], want)
        else:
            assert torch.equal(zl[:, :, h], bl[:, :, h])
    for name in names:  # only the last prompt token is edited
        assert torch.equal(cache[name][:, :-1], base[name][:, :-1])
    zero = tiny.run_with_hooks(x, fwd_hooks=iti.hooks(tiny, strength=0.0), padding_side="left")
    assert torch.equal(zero, tiny(x, padding_side="left"))


def test_save_load_round_trip(tiny, tmp_path):
    iti = Iti.from_contrast(tiny, CONTRAST, k=3, strength=2.0, val_fraction=0.34)
    io.save(iti, tmp_path / "iti", model=tiny)
    loaded = io.load(tmp_path / "iti", model=tiny, expect="iti")
    assert isinstance(loaded, Iti) and loaded.strength == 2.0 and loaded.layers == (0, 1)
    for f in ("heads", "directions", "stds", "probe_accuracy"):
        assert torch.equal(getattr(loaded, f), getattr(iti, f))
    x = ["round trip"]
    torch.testing.assert_close(tiny.run_with_hooks(x, fwd_hooks=loaded.hooks(tiny)), tiny.run_with_hooks(x, fwd_hooks=iti.hooks(tiny)))


@pytest.mark.parametrize("d_head", [192, 256])
def test_probes_fit_at_large_d_head(d_head):
    """Gemma-3-270M has d_head 256: batched LU solves failed there in torch 2.13 + MKL; the Cholesky solve does not."""
    torch.set_num_threads(2)  # what tests/conftest.py sets; the failure needed more than one thread
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(120, generator=g) > 0.5).float()
    x = torch.randn(8, 120, d_head, generator=g) + 0.8 * (y[None, :, None] * 2 - 1)
    w, b, mu, sd = fit_logistic_probes(x, y)
    assert torch.isfinite(w).all() and bool((probe_accuracy(x, y, w, b, mu, sd) > 0.9).all())
