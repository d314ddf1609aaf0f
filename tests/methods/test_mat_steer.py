"""MAT-Steer: gate/edit properties, fitting on planted directions, save/load, hooks under padding and KV cache,
and (slow) a SmolLM2 fit that moves held-out log-probs toward the desirable side."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
from consistency import assert_generation_consistent
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import activations, seeds

from tl_steer import io, steer
from tl_steer.errors import HookNameError, ManifestError, ShapeError, SteeringError
from tl_steer.functional import mat_steer as F
from tl_steer.methods.mat_steer import PRESETS, FitHistory, MatSteer
from tl_steer.pairs import ContrastSet

RESID = "blocks.0.hook_resid_pre"
Z = "blocks.1.attn.hook_z"


def _random(d: int, attrs: int = 3, seed: int = 0, scale: float = 1.0, per_head: tuple[int, int] | None = None,
            hook: str = RESID, rescale: bool = True) -> MatSteer:
    g = torch.Generator().manual_seed(seed)
    shape = (attrs, *per_head) if per_head else (attrs, d)
    return MatSteer(
        hook_name=hook, theta=torch.randn(*shape, generator=g) * scale, w=torch.randn(*shape, generator=g) * scale,
        b=torch.randn(*shape[:-1], generator=g), attributes=tuple(f"a{i}" for i in range(attrs)),
        rescale=rescale, per_head=per_head is not None,
    )


def _planted(d: int = 16, n: int = 100, attrs: int = 3, seed: int = 0, shift: float = 5.0):
    """Attribute t: desirable = noise + shift*u_t, undesirable = noise - shift*u_t, u_t orthonormal."""
    g = torch.Generator().manual_seed(seed)
    u = torch.linalg.qr(torch.randn(d, attrs, generator=g))[0].T  # (attrs, d) orthonormal
    good = {f"a{t}": torch.randn(n, d, generator=g) + shift * u[t] for t in range(attrs)}
    bad = {f"a{t}": torch.randn(n, d, generator=g) - shift * u[t] for t in range(attrs)}
    return good, bad, u


FAST = dict(epochs=60, lr=3e-2, kernel="median", progress=False)


# ---------------------------------------------------------------- apply: properties


@settings(max_examples=40, deadline=None)
@given(act=activations(d=10), seed=seeds, scale=st.floats(0.01, 50.0))
def test_gates_in_unit_interval_with_right_shape(act, seed, scale):
    m = _random(10, attrs=3, seed=seed, scale=scale)
    g = m.gates(act)
    assert g.shape == (*act.shape[:2], 3)
    assert bool(((g >= 0) & (g <= 1)).all())


@settings(max_examples=30, deadline=None)
@given(act=activations(d=10), seed=seeds, rescale=st.booleans())
def test_zero_theta_is_identity(act, seed, rescale):
    m = _random(10, seed=seed, rescale=rescale)
    zero = MatSteer(RESID, torch.zeros_like(m.theta), m.w, m.b, m.attributes, rescale=rescale)
    assert torch.equal(zero(act, hook=None), act)
    assert torch.equal(m.with_strength(0.0)(act, hook=None), act)


@settings(max_examples=40, deadline=None)
@given(act=activations(d=10), seed=seeds, scale=st.floats(0.1, 20.0))
def test_norm_preserved_per_token_when_rescale(act, seed, scale):
    m = _random(10, seed=seed, scale=scale)
    out = m(act, hook=None)
    torch.testing.assert_close(out.norm(dim=-1), act.norm(dim=-1), rtol=1e-4, atol=1e-4)
    off = MatSteer(RESID, m.theta, m.w, m.b, m.attributes, rescale=False)
    raw = off(act, hook=None)
    expected = act + torch.einsum("bpt,td->bpd", m.gates(act), m.theta)  # the paper's formula, written out
    torch.testing.assert_close(raw, expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out, expected * act.norm(dim=-1, keepdim=True) / expected.norm(dim=-1, keepdim=True).clamp_min(1e-8), rtol=1e-4, atol=1e-4)


@settings(max_examples=30, deadline=None)
@given(act=activations(d=10, max_batch=6), seed=seeds)
def test_batch_permutation_equivariance(act, seed):
    m = _random(10, seed=seed)
    perm = torch.randperm(act.shape[0], generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(m(act[perm], hook=None), m(act, hook=None)[perm])
    torch.testing.assert_close(m.gates(act[perm]), m.gates(act)[perm])


def test_pure_and_keeps_dtype():
    m = _random(16, seed=3)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        a = (torch.randn(2, 5, 16) * 3).to(dtype)
        before = a.clone()
        out = m(a, hook=None)
        assert out.dtype == dtype and out.shape == a.shape and torch.equal(a, before)
        assert not torch.equal(out.float(), a.float())


def test_per_head_layout_keeps_each_head_norm_and_is_independent():
    m = _random(0, attrs=2, seed=1, per_head=(4, 8), hook=Z)
    a = torch.randn(2, 3, 4, 8) * 2
    out = m(a, hook=None)
    torch.testing.assert_close(out.norm(dim=-1), a.norm(dim=-1), rtol=1e-4, atol=1e-4)
    assert m.gates(a).shape == (2, 3, 4, 2)
    b = a.clone()
    b[..., 2, :] = torch.randn(2, 3, 8)  # change head 2 only: the other heads' outputs must not move
    out_b = m(b, hook=None)
    keep = [0, 1, 3]
    torch.testing.assert_close(out_b[..., keep, :], out[..., keep, :])
    flat = _random(32, attrs=2, seed=1, hook=Z)  # flat layout over head*d_head
    torch.testing.assert_close(flat(a, hook=None).flatten(2).norm(dim=-1), a.flatten(2).norm(dim=-1), rtol=1e-4, atol=1e-4)


def test_wrong_activation_shape_raises():
    m = _random(10)
    with pytest.raises(ShapeError, match="10 features"):
        m(torch.randn(1, 2, 11), hook=None)
    fitted = MatSteer.fit(*_planted(d=8, n=20, attrs=1)[:2], RESID, epochs=1, progress=False)
    with pytest.raises(ShapeError, match=r"expects \(batch, pos, 8\)"):
        fitted(torch.randn(1, 2, 2, 4), hook=None)
    with pytest.raises(ShapeError, match="attributes"):
        MatSteer(RESID, torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(2), ("only_one",))


# ---------------------------------------------------------------- fit


def test_fit_moves_undesirable_toward_desirable_and_gates_target_it():
    good, bad, u = _planted()
    m = MatSteer.fit(good, bad, RESID, **FAST)
    assert isinstance(m.history, FitHistory) and len(m.history.epochs) >= 5
    rel = lambda a: ((m(a, hook=None) - a).norm(dim=-1) / a.norm(dim=-1)).mean()  # noqa: E731
    for t, name in enumerate(m.attributes):
        x, y = bad[name][None], good[name][None]
        before, after = (x @ u[t]).mean(), (m(x, hook=None) @ u[t]).mean()
        # undesirable rows cross over to the desirable side of the planted direction (measured ~ -5 -> +4)
        assert before < -4 and after > 2, (name, float(before), float(after))
        # gates fire on undesirable rows more than on desirable ones (summed over attributes; measured ~0.3 vs 0.1)
        assert m.gates(x).sum(-1).mean() > 2 * m.gates(y).sum(-1).mean()
        # and desirable rows move much less (relative change measured ~1.3 vs 0.35)
        assert rel(x) > 2 * rel(y)
    # the edit closes most of the distribution gap: the final training MMD is under half the unedited data's
    # (gates now start as probes, so the first epoch's MMD is already low; this compares with no edit at all)
    from tl_steer.functional import mat_steer as F

    sig = torch.tensor(m.history.bandwidths[:1])
    unedited = sum(float(F.mmd2(good[a], bad[a], sig)) for a in m.attributes) / len(m.attributes)
    assert m.history.column("mmd")[-1] < 0.5 * unedited, (m.history.column("mmd")[-1], unedited)


def test_polarity_swapped_sets_steer_the_other_way():
    good, bad, u = _planted(attrs=1)
    m = MatSteer.fit(bad, good, RESID, **FAST)  # "desirable" is now the -u side
    y = good["a0"][None]
    assert (m(y, hook=None) @ u[0]).mean() < (y @ u[0]).mean() - 3


def test_fitted_orthogonality_loss_decreases():
    good, bad, _ = _planted(d=16, attrs=3)
    m = MatSteer.fit(good, bad, RESID, epochs=30, lr=1e-2, lambdas=(0.9, 0.9, 1.0), kernel="median",
                           init="random", progress=False, val_fraction=0.0, seed=4)
    first, last = m.history.column("ortho")[0], m.history.column("ortho")[-1]
    g = torch.Generator().manual_seed(4)
    init = float(F.orthogonality(torch.randn(3, 1, 16, generator=g)).mean())  # the fit's theta initialisation
    final = float(F.orthogonality(m.theta[:, None]).mean())
    assert last < 0.5 * first and final < 0.5 * init, (init, first, last, final)


def test_fit_is_seeded():
    good, bad, _ = _planted(d=8, n=40, attrs=2)
    kw = dict(epochs=3, progress=False, kernel="multiscale")
    a = MatSteer.fit(good, bad, RESID, seed=5, **kw)
    b = MatSteer.fit(good, bad, RESID, seed=5, **kw)
    c = MatSteer.fit(good, bad, RESID, seed=6, **kw)
    assert torch.equal(a.theta, b.theta) and torch.equal(a.w, b.w) and torch.equal(a.b, b.b)
    assert not torch.equal(a.theta, c.theta)


def test_early_stopping_returns_best_validation_epoch():
    good, bad, _ = _planted(d=8, n=60, attrs=2)
    rows = []
    m = MatSteer.fit(good, bad, RESID, epochs=40, lr=0.3, patience=3, val_fraction=0.25, kernel="median",
                           progress=False, log=rows.append)
    assert rows == m.history.epochs and all("val_loss" in r and "mmd" in r and "pair_dist" in r for r in rows)
    vals = m.history.column("val_loss")
    assert m.history.best_epoch == min(range(len(vals)), key=vals.__getitem__)
    if m.history.stopped_early:
        assert len(vals) == m.history.best_epoch + 4
    assert m.fit_config["best_epoch"] == m.history.best_epoch


def test_per_head_fit_on_z_shaped_features():
    g = torch.Generator().manual_seed(0)
    u = torch.randn(4, 8, generator=g)
    u = 4 * u / u.norm(dim=-1, keepdim=True)
    good = {"x": torch.randn(120, 4, 8, generator=g) + u}
    bad = {"x": torch.randn(120, 4, 8, generator=g) - u}
    m = MatSteer.fit(good, bad, Z, per_head=True, **FAST)
    assert m.theta.shape == (1, 4, 8) and m.b.shape == (1, 4)
    x = bad["x"][None]
    proj = lambda t: torch.einsum("bnhd,hd->h", t, u / 4) / t.shape[1]  # noqa: E731
    assert bool((proj(m(x, hook=None)) > proj(x) + 2).all())


def test_gaussian_kernel_warns_when_it_vanishes():
    good, bad, _ = _planted(d=16, n=20, attrs=1, shift=20.0)
    with pytest.warns(UserWarning, match="vanishes"):
        MatSteer.fit(good, bad, RESID, epochs=1, progress=False, kernel="gaussian", sigma=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MatSteer.fit(good, bad, RESID, epochs=1, progress=False, kernel="median")


def test_fit_input_errors():
    good, bad, _ = _planted(d=8, n=20, attrs=2)
    with pytest.raises(SteeringError, match="same attributes"):
        MatSteer.fit(good, {"a0": bad["a0"]}, RESID, progress=False)
    with pytest.raises(ShapeError, match=r"negative\['a1'\]"):
        MatSteer.fit(good, {**bad, "a1": torch.randn(20, 9)}, RESID, progress=False)
    with pytest.raises(SteeringError, match="kernel"):
        MatSteer.fit(good, bad, RESID, kernel="rbf", progress=False)
    with pytest.raises(ShapeError, match="per_head"):
        MatSteer.fit(good, bad, RESID, per_head=True, progress=False)


def test_mmd_is_zero_for_identical_samples_and_batched_over_groups():
    x = torch.randn(3, 2, 10, 5)
    sig = torch.ones(2, 1) * 2.0
    assert float(F.mmd2(x, x, sig).abs().max()) < 1e-6
    y = x + 3.0
    assert bool((F.mmd2(x, y, sig) > 0.1).all())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_and_apply_on_cuda_match_cpu():
    good, bad, _ = _planted(d=8, n=40, attrs=2)
    kw = dict(epochs=3, progress=False, kernel="median", seed=1)
    cpu = MatSteer.fit(good, bad, RESID, **kw)
    gpu = MatSteer.fit(good, bad, RESID, device="cuda", **kw)
    assert gpu.theta.device.type == "cuda"
    torch.testing.assert_close(gpu.theta.cpu(), cpu.theta, rtol=1e-3, atol=1e-3)
    a = torch.randn(2, 3, 8)
    torch.testing.assert_close(gpu(a.cuda(), hook=None).cpu(), cpu(a, hook=None), rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------- save / load


def test_save_load_round_trip_exact(tmp_path, tiny):
    m = MatSteer.fit(*_planted(d=64, n=30, attrs=2)[:2], RESID, epochs=2, progress=False, kernel="median")
    path = io.save(m, tmp_path / "ms", model=tiny)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["method"] == "mat-steer" and manifest["state"] == "mat_steer" and manifest["hook_names"] == [RESID]
    assert manifest["config"]["site"] == "resid_pre" and manifest["config"]["d"] == 64
    assert manifest["model"]["d_model"] == 64 and manifest["config"]["fit_config"]["preset"] == "tuned"
    assert manifest["config"]["fit_config"]["lambdas"] == list(PRESETS["tuned"]["lambdas"])
    back = io.load(path, model=tiny, expect="mat-steer")
    for k in ("theta", "w", "b"):
        assert torch.equal(getattr(back, k), getattr(m, k))
    assert back.attributes == m.attributes and back.rescale and back.feature_shape == (64,)
    a = torch.randn(2, 3, 64)
    assert torch.equal(back(a, hook=None), m(a, hook=None))


def test_load_rejects_corrupt_files_and_other_models(tmp_path, tiny):
    m = _random(64, attrs=2)
    m = MatSteer(RESID, m.theta, m.w, m.b, m.attributes, feature_shape=(64,))
    path = io.save(m, tmp_path / "ms", model=tiny)
    other = MatSteer(Z, torch.zeros(1, 64), torch.zeros(1, 64), torch.zeros(1), ("x",), feature_shape=(64,))
    from tl_steer.models import tiny_model

    wide = tiny_model(d_model=32, n_heads=4)
    with pytest.raises(ManifestError, match="another model"):
        io.load(path, model=wide)
    with pytest.raises(ShapeError, match="features"):
        other.hooks(wide)
    with pytest.raises(HookNameError):
        MatSteer(  # a hook that the model does not have
            "blocks.7.hook_resid_pre", m.theta, m.w, m.b, m.attributes
        ).hooks(tiny)
    tensors = path / io.read_manifest(path)["tensors_file"]
    tensors.write_bytes(tensors.read_bytes()[:-7] + b"garbage")
    with pytest.raises(ManifestError, match="corrupt"):
        io.load(path, model=tiny)


# ---------------------------------------------------------------- hooks on models


def test_hook_output_is_the_method_applied_to_the_clean_activation(tiny):
    m = _random(64, attrs=2, seed=2, scale=2.0)
    _, clean = tiny.run_with_cache("hello world", names_filter=[RESID])
    with steer(tiny, m.hooks(tiny)):
        _, cache = tiny.run_with_cache("hello world", names_filter=[RESID])
    torch.testing.assert_close(cache[RESID], m(clean[RESID], hook=None))
    assert not torch.allclose(tiny("hello world"), tiny.run_with_hooks("hello world", fwd_hooks=m.hooks(tiny)))


@pytest.mark.parametrize("per_head", [False, True])
def test_z_site_flat_and_per_head_change_logits(tiny, per_head):
    m = _random(64, attrs=2, seed=5, scale=2.0, per_head=(4, 16) if per_head else None, hook=Z)
    base = tiny("steer me")
    out = tiny.run_with_hooks("steer me", fwd_hooks=m.hooks(tiny))
    assert (out - base).abs().max() > 1e-3


def test_fit_texts_collects_last_token_features(tiny):
    # the last tokens differ between the sides: at layer 0 a last-token feature is that token's embedding, and equal
    # last tokens on both sides would be a contrast with no direction (refused)
    cs = [ContrastSet("mood", ("good day!", "nice one!", "happy cat!", "kind word!"), ("bad day?", "mean one?", "sad cat.", "cruel word."))]
    m = MatSteer.fit_texts(tiny, cs, RESID, epochs=3, progress=False, kernel="median", val_fraction=0.0)
    assert m.attributes == ("mood",) and m.fit_config["read"] == "last" and m.feature_shape == (64,)
    assert m.fit_config["n_positive"] == {"mood": 4} and len(m.history.epochs) == 3
    with pytest.raises(SteeringError, match="ContrastSet"):
        MatSteer.fit_texts(tiny, [("good", "bad")], RESID, progress=False)


PROMPTS = ["hi", "hello there", "a much longer prompt here"]


@pytest.mark.parametrize("scope", ["all", "prompt", "generated"])
def test_generation_batched_single_cached_uncached_agree(tiny_hf, scope):
    m = _random(64, attrs=3, seed=7, scale=3.0)
    assert_generation_consistent(tiny_hf, m.hooks(tiny_hf, positions=scope), PROMPTS)


def test_batched_left_padded_logits_equal_one_by_one(tiny_hf):
    m = _random(64, attrs=2, seed=9, scale=3.0)
    with steer(tiny_hf, m.hooks(tiny_hf)):
        batched = tiny_hf(PROMPTS, padding_side="left")[:, -1]
        single = torch.cat([tiny_hf(p)[:, -1] for p in PROMPTS])
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- SmolLM2 integration

_SUBJECTS = [
    "The movie", "The restaurant", "The hotel", "The concert", "The book", "The service", "The game", "The trip",
    "The class", "The party", "The phone", "The show", "The meal", "The museum", "The flight", "The app",
    "The album", "The park", "The coffee", "The lecture", "The play", "The store", "The course", "The beach",
    "The weather", "The wedding", "The interview", "The car", "The apartment", "The festival", "The match",
    "The dinner", "The hike", "The tour", "The song", "The team", "The doctor", "The teacher", "The pizza", "The view",
    "The garden", "The train ride", "The conference", "The webinar",
]
_GOOD = ["wonderful", "delightful", "excellent", "fantastic", "lovely", "superb", "amazing", "great"]
_BAD = ["terrible", "awful", "horrible", "dreadful", "disgusting", "miserable", "bad", "boring"]
_PAIRS = [(f"{s} was {_GOOD[i % 8]}", f"{s} was {_BAD[(i * 3) % 8]}") for i, s in enumerate(_SUBJECTS)]


@pytest.mark.slow
def test_smollm2_fit_shifts_held_out_log_probs_toward_desirable(smollm2):
    from tl_steer.collect import tokenize_left

    model = smollm2
    train, held = _PAIRS[:34], _PAIRS[34:]
    hook = "blocks.10.hook_resid_pre"
    cs = ContrastSet("sentiment", tuple(p for p, _ in train), tuple(n for _, n in train))
    m = MatSteer.fit_texts(model, [cs], hook, kernel="median", lr=3e-3, epochs=100, patience=None,
                                 seed=0, progress=False)
    assert m.history.column("mmd")[-1] < m.history.column("mmd")[0]
    loved, hated = model.to_single_token(" loved"), model.to_single_token(" hated")

    def log_odds(texts, hooks=()):
        toks, mask = tokenize_left(model, [t + " and I" for t in texts])
        with torch.no_grad(), steer(model, list(hooks)):
            lp = model(toks, attention_mask=mask)[:, -1].log_softmax(-1)
        return lp[:, loved] - lp[:, hated]

    bad_texts, good_texts = [n for _, n in held], [p for p, _ in held]
    hooks = m.hooks(model)
    shift_bad = log_odds(bad_texts, hooks) - log_odds(bad_texts)
    shift_good = log_odds(good_texts, hooks) - log_odds(good_texts)
    # measured (seed 0): mean shift +1.24 nats on the undesirable prompts (10/10 positive), +0.001 on desirable ones
    assert float(shift_bad.mean()) > 0.4, shift_bad
    assert float((shift_bad > 0).float().mean()) >= 0.8, shift_bad
    assert float(shift_bad.mean()) > float(shift_good.mean()) + 0.3, (shift_bad, shift_good)
    assert math.isfinite(float(shift_good.mean()))


def test_fit_works_under_no_grad():
    """Notebook users wrap everything in torch.no_grad(); fitting must still train."""
    good, bad, _ = _planted(d=8, n=30, attrs=1)
    with torch.no_grad():
        m = MatSteer.fit(good, bad, RESID, epochs=3, progress=False, val_fraction=0.0)
    assert len(m.history.epochs) == 3 and m.history.epochs[-1]["loss"] != m.history.epochs[0]["loss"]
