# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 2. MAT-Steer on two attributes, with per-token gates
#
# **Model:** the embedded SmolLM2-135M-Instruct (token activations are collected once; the fit itself takes a few
# seconds on CPU).
#
# [MAT-Steer](../docs/methods/mat_steer.md) learns one steering vector $\theta_t$ *and one gate* $g_t$ per attribute.
# For every token activation $a$:
#
# $$ g_t(a) = \sigma(w_t \cdot a + b_t), \qquad a' = a + \sum_t g_t(a)\,\theta_t, \qquad a' \leftarrow a' \frac{\lVert a \rVert}{\lVert a' \rVert} $$
#
# The gates are what make it *multi*-attribute: each attribute's vector should fire only on the tokens that need it,
# so steering sentiment does not disturb politeness and vice versa. Here we fit two attributes from tiny
# hand-written sets and look at the gates token by token.

# %%
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import tl_steer
from tl_steer.collect import collect
from tl_steer.methods.mat_steer import MatSteer
from tl_steer.models import load
from tl_steer.pairs import ContrastSet
from tl_steer.sites import hook_name

#: the docs build saves each figure there too; in Jupyter the figures show inline below their cells
FIGURES = os.environ.get("TL_STEER_FIGURES")
torch.set_grad_enabled(False)
model = load()

# %% [markdown]
# ## Two attributes
#
# `positive` is always the desirable side: positive sentiment, polite phrasing.

# %%
sentiment = ContrastSet(
    "sentiment",
    positive=[
        "I loved the concert, it was wonderful", "What a beautiful morning, I feel great",
        "The team did an amazing job and we celebrated", "My friends threw me a lovely party",
        "The garden looks gorgeous in spring", "We had a fantastic holiday by the sea",
        "The kids were delighted with their gifts", "This soup is delicious and warming",
        "I am proud of how well it went", "Such a cheerful, sunny day",
    ],
    negative=[
        "I hated the concert, it was dreadful", "What a miserable morning, I feel awful",
        "The team did a terrible job and we argued", "My friends forgot my birthday again",
        "The garden looks dead and grey", "We had a disastrous holiday in the rain",
        "The kids were crying over their broken toys", "This soup is cold and disgusting",
        "I am ashamed of how badly it went", "Such a gloomy, rainy day",
    ],
)
politeness = ContrastSet(
    "politeness",
    positive=[
        "Could you please pass me the salt?", "Would you mind closing the window, thank you",
        "Excuse me, may I ask a question?", "Thank you so much for your help",
        "Please let me know if you need anything", "I would be grateful if you could call me back",
        "Sorry to bother you, do you have a moment?", "Kindly send the report when you can",
        "It was kind of you to wait for me", "Please take a seat, make yourself at home",
    ],
    negative=[
        "Pass me the salt, idiot.", "Shut the window, are you deaf?", "Hey you, answer my question now.",
        "You were useless, as usual", "Don't bother me, get lost", "Call me back or you're fired, moron",
        "Move, I don't have time for you", "Send the stupid report already", "You made me wait, you clown",
        "Sit down and shut up",
    ],
)

# %% [markdown]
# ## Token-level activations
#
# The paper fits on token activations, not one vector per text. `collect(..., read="all")` returns the
# left-padded `(n, pos, d_model)` activations and a mask of real tokens; we keep every real token except BOS (whose
# residual stream is huge and the same in every text).

# %%
HOOK = hook_name(10, "resid_pre")


def token_rows(texts):
    c = collect(model, list(texts), HOOK, read="all", progress=False)
    mask = c.mask.clone()
    mask[torch.arange(len(texts)), mask.float().argmax(1)] = False  # drop each row's first real token (BOS)
    return c.acts[HOOK][mask]


desirable = {s.attribute: token_rows(s.positive) for s in (sentiment, politeness)}
undesirable = {s.attribute: token_rows(s.negative) for s in (sentiment, politeness)}
print({k: tuple(v.shape) for k, v in desirable.items()}, {k: tuple(v.shape) for k, v in undesirable.items()})

# %% [markdown]
# ## Fit
#
# `MatSteer.fit(positive, negative, hook_name, ...)` minimises an MMD term (move negative tokens onto the
# desirable distribution) plus preservation, sparsity and orthogonality penalties, and returns the method and a
# `FitHistory`. (`MatSteer.fit_texts(model, [sentiment, politeness], HOOK, read="last")` does the collection
# for you, one row per text.)
#
# The settings are chosen for this *tiny* set (under 100 tokens per side), and they differ from the paper's defaults.
# With the reference preset (`preset="reference"`: random $\theta$, lr `1e-3`, Gaussian kernel with $\sigma=2$) the gates close on every token here:
# the edit never wins enough MMD to pay for the penalties. We start $\theta$ at the mean difference, use a
# multi-bandwidth kernel scaled by the median pairwise distance, a larger step and a smaller sparsity weight.

# %%
with torch.enable_grad():
    mat = MatSteer.fit(
        desirable, undesirable, HOOK,
        init="mean_diff", kernel="multiscale", lr=3e-2, lambdas=(0.9, 0.1, 0.1),
        epochs=60, patience=None, seed=0, progress=False,
    )
print(f"epochs {len(mat.history.epochs)}, best (validation) epoch {mat.history.best_epoch}, fit {mat.history.seconds:.1f} s")
print("attributes:", mat.attributes, " theta norms:", [round(v, 1) for v in mat.theta.norm(dim=-1).tolist()])
for i, a in enumerate(mat.attributes):
    g_des = mat.gates(desirable[a][None])[0, :, i].mean().item()
    g_und = mat.gates(undesirable[a][None])[0, :, i].mean().item()
    print(f"mean gate '{a}': desirable tokens {g_des:.2f}, undesirable tokens {g_und:.2f}")

# %% [markdown]
# ## The gates, token by token
#
# `mat.gates(activation)` returns `(batch, pos, attribute)` gate values in $[0, 1]$. Below, for four new sentences,
# each row of the heatmap is one attribute's gate on every token.

# %%
tests = [
    "Thank you, the dinner was lovely",
    "Shut up, this dinner is disgusting",
    "Please forgive me, I feel terrible",
    "The weather is cloudy today",
]
c = collect(model, tests, HOOK, read="all", progress=False)
gates = mat.gates(c.acts[HOOK])  # (4, pos, 2)

fig, axes = plt.subplots(len(tests), 1, figsize=(9, 1.5 * len(tests) + 0.6), constrained_layout=True)
for ax, i, text in zip(axes, range(len(tests)), tests, strict=True):
    g = gates[i][c.mask[i]].T  # (attr, tokens)
    tokens = model.to_str_tokens(text)
    im = ax.imshow(g, vmin=0, vmax=1, cmap="magma", aspect="auto")
    ax.set_xticks(range(len(tokens)), [t.replace("<|im_start|>", "BOS") for t in tokens], fontsize=8)
    ax.set_yticks(range(len(mat.attributes)), mat.attributes, fontsize=8)
    for j in range(g.shape[1]):
        for k in range(g.shape[0]):
            ax.text(j, k, f"{g[k, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if g[k, j] < 0.5 else "black")
fig.colorbar(im, ax=axes, fraction=0.02, label="gate")
fig.suptitle(f"MAT-Steer gates at {HOOK}")
if FIGURES:
    fig.savefig(Path(FIGURES) / "02_mat_steer_gates.png", dpi=110, bbox_inches="tight")
plt.show()

for i, text in enumerate(tests):
    g = gates[i][c.mask[i]]
    tokens = model.to_str_tokens(text)
    for k, a in enumerate(mat.attributes):
        fired = [t for t, v in zip(tokens[1:], g[1:, k].tolist(), strict=True) if v > 0.5]
        print(f"{text!r:40} {a:10} gate > 0.5 on {fired}")

# %% [markdown]
# Read the heatmap with the training data in mind. The gates are close to binary. Apart from BOS they stay shut on
# most tokens and open on a few words. Most of these are the negative ones, though not all of them: compare the lists
# printed above. That is the behaviour the sparsity and preservation terms ask for. Two caveats: BOS, left out of the fit because its residual stream is far from everything
# else, gets gate 1 (harmless here, since `rescale` keeps its norm, but a reason to scope or mask it). And the two
# attributes mostly fire *together*: in twenty rude texts and twenty negative ones, rudeness and negativity are
# strongly correlated, so nothing in the data teaches the gates to tell them apart. Disentangling attributes needs
# data in which they vary independently.

# %% [markdown]
# ## Steering with both attributes at once
#
# `mat.hooks(model, positions=..., strength=...)` is one hook at `HOOK`; every token gets the sum of the gated vectors,
# then its norm is restored. We compare greedy continuations. Expect small effects from a fit on forty texts; the
# point here is the mechanics, and [Evaluation](../docs/evaluation.md) is where effects are measured.

# %%
prompts = ["You are such a", "Honestly, the service here was", "Listen, I need you to"]
for coef in (0.0, 1.0, 2.0):
    with tl_steer.steer(model, mat.hooks(model, positions="all", strength=coef)):
        outs = model.generate(prompts, max_new_tokens=12, do_sample=False)
    print(f"coef {coef}:")
    for p, o in zip(prompts, outs, strict=True):
        print(f"   {p!r} -> ...{o[len(p):]!r}")

# %% [markdown]
# **Things to try.** Fit on the real datasets (`tl_steer.eval.build_contrast("toxigen")` etc.; see
# [Evaluation](../docs/evaluation.md)), edit attention heads with `per_head=True` on `hook_z` as in the paper, and save
# the fit with `mat.save("runs/mat", model=model)`. The [method page](../docs/methods/mat_steer.md) lists where this
# implementation departs from the reference code.
