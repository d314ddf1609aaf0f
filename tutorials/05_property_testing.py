# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 5. Property-testing your own steering hook
#
# **Model:** the tiny TL-native model (`tl_steer.models.tiny_model()`: 2 layers, d_model 64, random weights).
# The properties below are about the hook's contract, not about language, and a forward takes milliseconds, so
# hypothesis can try hundreds of inputs in seconds.
#
# A steering hook is a function `fn(activation, hook) -> Tensor`. tl_steer asks every hook to be **pure**: it returns
# a new tensor of the same shape, dtype and device and never edits `activation` in place (TransformerLens caches and
# other hooks can hold the same storage). Those are exactly the kind of rules that example-based tests miss and
# property-based tests catch. We write a hook, state its properties, and let
# [hypothesis](https://hypothesis.readthedocs.io) search for counterexamples.

# %%
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor

import tl_steer

#: the docs build saves each figure there too; in Jupyter the figures show inline below their cells
FIGURES = os.environ.get("TL_STEER_FIGURES")
torch.set_grad_enabled(False)

# derandomize=True: the same examples every run, so this page is reproducible. In a test suite you would
# usually leave it off (hypothesis then also remembers failing examples in its database).
CHECK = settings(max_examples=200, deadline=None, derandomize=True, database=None)

# %% [markdown]
# ## The hook: cap the projection on a direction
#
# `CapProjection(u, ceiling)` limits how far the activation points along a unit direction `u`: the component
# `a·u` is clamped to at most `ceiling`, everything orthogonal to `u` is left alone. (This is the shape of
# "refusal clamping" and of ITI-style edits.) It follows the tl_steer pattern: a frozen dataclass of tensors with a
# pure `__call__(activation, hook)`.

# %%
@dataclass(frozen=True)
class CapProjection:
    direction: Tensor  # (d,), unit norm
    ceiling: float

    def __call__(self, activation: Tensor, hook: Any) -> Tensor:
        u = self.direction.to(dtype=activation.dtype, device=activation.device)
        u = u / u.norm()  # renormalise in the activation's dtype (see below)
        proj = activation @ u  # (batch, pos)
        excess = (proj - self.ceiling).clamp_min(0)
        return activation - excess[..., None] * u

# %% [markdown]
# ## Strategies: random activations, directions and ceilings
#
# Strategies build inputs. We draw a shape, a seed and a scale, and build the tensors with a seeded
# `torch.Generator` (hypothesis shrinks the *integers*; the tensors follow). `tests/strategies.py` in the tl_steer
# repository holds the strategies the library's own tests use.

# %%
@st.composite
def activations(draw, d: int | None = None, dtypes=(torch.float32, torch.float64)):
    b, p = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    d = d if d is not None else draw(st.integers(1, 32))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    scale = draw(st.floats(0.01, 100.0))
    return (torch.randn(b, p, d, generator=g, dtype=torch.float64) * scale).to(draw(st.sampled_from(dtypes)))


@st.composite
def hook_and_activation(draw):
    act = draw(activations())
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    u = torch.randn(act.shape[-1], generator=g)
    u = u / u.norm()
    ceiling = draw(st.floats(-50.0, 50.0, allow_nan=False))
    return CapProjection(u, ceiling), act

# %% [markdown]
# ## Properties
#
# 1. **Contract:** same shape, dtype and device; the input is not modified.
# 2. **The cap holds:** afterwards `a·u <= ceiling` (up to rounding).
# 3. **Nothing else moves:** the part orthogonal to `u` is unchanged, and activations already under the ceiling come
#    back exactly as they were.
# 4. **Idempotence:** applying the hook twice is the same as once.
#
# A `@given` test is a plain function: calling it runs the search, and it raises on the first (shrunk) failure.
#
# The first draft of `CapProjection` did not have the `u = u / u.norm()` line, and properties 2 and 3 failed at once on
# a shrunk float64 example with `d = 2`: a float32 unit vector is a unit vector only to about `1e-7`, which is far
# outside float64 rounding. Renormalising after the cast fixed it. That is the kind of bug that examples in one
# dtype never show.

# %%
def tol(t: Tensor) -> float:
    return 1e-4 if t.dtype == torch.float32 else 1e-9


@CHECK
@given(hook_and_activation())
def test_contract(case):
    hook, act = case
    before = act.clone()
    out = hook(act, hook=None)
    assert out.shape == act.shape and out.dtype == act.dtype and out.device == act.device
    assert torch.equal(act, before), "the hook edited its input in place"


@CHECK
@given(hook_and_activation())
def test_cap_and_orthogonal_part(case):
    hook, act = case
    u = hook.direction.to(act.dtype)
    u = u / u.norm()
    out = hook(act, hook=None)
    scale = 1 + act.abs().max().item()
    assert ((out @ u) <= hook.ceiling + tol(act) * scale).all()
    ortho = lambda t: t - (t @ u)[..., None] * u  # noqa: E731
    torch.testing.assert_close(ortho(out), ortho(act), atol=tol(act) * scale, rtol=0)
    under = (act @ u) <= hook.ceiling
    assert torch.equal(out[under], act[under])


@CHECK
@given(hook_and_activation())
def test_idempotent(case):
    hook, act = case
    once = hook(act, hook=None)
    torch.testing.assert_close(hook(once, hook=None), once, atol=tol(act) * (1 + act.abs().max().item()), rtol=0)


for test in (test_contract, test_cap_and_orthogonal_part, test_idempotent):
    test()
    print(f"{test.__name__}: passed (200 examples)")

# %% [markdown]
# ## Hypothesis finds the bug you did not write a test for
#
# Here is the same hook written the tempting way: in place, "to save memory". On the real model it even produces the
# right logits (TransformerLens accepts in-place edits), so an end-to-end example test would pass. The contract
# property fails at once, and hypothesis shrinks the counterexample to the smallest input that shows it.

# %%
@dataclass(frozen=True)
class CapProjectionInPlace(CapProjection):
    def __call__(self, activation: Tensor, hook: Any) -> Tensor:
        u = self.direction.to(dtype=activation.dtype, device=activation.device)
        excess = ((activation @ u) - self.ceiling).clamp_min(0)
        activation -= excess[..., None] * u  # in place: breaks purity
        return activation


@CHECK
@given(hook_and_activation())
def test_contract_inplace(case):
    hook, act = case
    test_contract.hypothesis.inner_test((CapProjectionInPlace(hook.direction, hook.ceiling), act))


try:
    test_contract_inplace()
    print("no counterexample found")
except AssertionError as e:
    print("hypothesis found a counterexample:", str(e).splitlines()[0])
    for note in getattr(e, "__notes__", []):
        print(note)

# %% [markdown]
# The shrunk example is as small as an input can be: one row, one position, `d = 1`, a value above the ceiling.
# (`test_contract.hypothesis.inner_test` is the undecorated body of a `@given` test: handy to reuse a property
# with another hook.)
#
# ## Properties that need the model: padding and batch invariance
#
# Position scopes are where hooks meet the forward pass. `tl_steer.scoped(fn, positions, model)` wraps a pure hook
# so that it edits only the chosen positions and never padding. Two properties, on random batches of random
# strings:
#
# * **Padding is never edited:** at every position whose attention mask is 0 the scoped hook returns its input.
# * **Batch invariance:** each row's last-token logits under steering are the same whether the row runs alone or
#   inside a left-padded batch.

# %%
from tl_steer.models import tiny_model

model = tiny_model()
g = torch.Generator().manual_seed(0)
u = torch.randn(model.cfg.d_model, generator=g)
cap = CapProjection(u / u.norm(), ceiling=-0.5)  # a low ceiling, so the hook really edits
HOOK = "blocks.0.hook_resid_post"

texts = st.lists(st.text(alphabet="abcdefgh xyz.", min_size=1, max_size=12), min_size=1, max_size=4)
scopes = st.sampled_from(["all", "prompt", "last_prompt"])


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(texts, scopes)
def test_padding_never_edited(batch, scope):
    seen = []
    inner = tl_steer.scoped(cap, scope, model)

    def recording(act, hook):
        out = inner(act, hook=hook)
        seen.append((act.clone(), out))
        return out

    tokens = model.to_tokens(batch, padding_side="left")
    pad = tokens == model.tokenizer.pad_token_id
    with tl_steer.steer(model, [(HOOK, recording)]):
        model(batch, padding_side="left")
    (act, out), = seen
    assert torch.equal(out[pad], act[pad]), f"padding edited for {batch!r}"


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(texts, scopes)
def test_batch_invariance(batch, scope):
    hooks = [(HOOK, tl_steer.scoped(cap, scope, model))]
    with tl_steer.steer(model, hooks):
        together = model(batch, padding_side="left")[:, -1]
        alone = torch.cat([model([t])[:, -1] for t in batch])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)


for test in (test_padding_never_edited, test_batch_invariance):
    test()
    print(f"{test.__name__}: passed (60 examples)")

# %% [markdown]
# ## What the hook does, in one picture
#
# The projections on `u` before and after the cap, over the residual stream of a batch of strings: everything above
# the ceiling is moved onto it, everything below is untouched.

# %%
_, cache = model.run_with_cache(["abc def", "hello world", "xyz. xyz."], names_filter=[HOOK])
act = cache[HOOK]
before = (act @ cap.direction).flatten()
after = (cap(act, hook=None) @ cap.direction).flatten()
fig, ax = plt.subplots(figsize=(5.5, 3.6))
ax.scatter(before, after, s=14)
lims = [before.min().item() - 0.2, before.max().item() + 0.2]
ax.plot(lims, lims, color="grey", lw=0.8, ls="--", label="unchanged")
ax.axhline(cap.ceiling, color="C3", lw=0.8, label=f"ceiling = {cap.ceiling}")
ax.set_xlabel("a·u before")
ax.set_ylabel("a·u after")
ax.set_title("CapProjection on blocks.0.hook_resid_post (tiny model)")
ax.legend()
fig.tight_layout()
if FIGURES:
    fig.savefig(Path(FIGURES) / "05_cap_projection.png", dpi=110)
plt.show()

# %% [markdown]
# **In your own test suite**, keep the `@given` functions in `tests/` (pytest collects them; drop
# `derandomize=True` so each run explores new inputs) and put reusable strategies next to the library's in
# `tests/strategies.py`. tl_steer's own tests set `TL_STEER_TYPECHECK=1`, which also checks every jaxtyping
# annotation at run time.
