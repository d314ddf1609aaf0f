# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 3. SADI on attention heads
#
# **Model:** the embedded SmolLM2-135M-Instruct (fitting is one pass of 20 short texts over all 30 layers).
#
# [SADI](../docs/methods/sadi.md) (Semantics-Adaptive Dynamic Intervention) does not add a fixed vector. It picks the
# elements (here: attention heads) whose activations differ most between positive and negative texts, and at run
# time scales *the input's own activation* on those elements:
#
# $$ a' = a + \delta\,(M \odot a) $$
#
# where $M$ is a binary mask over the global top-$K$ heads (all layers ranked together). The steering direction
# therefore adapts to each input. On heads the site is `blocks.L.attn.hook_z`, shape `(batch, pos, n_heads, d_head)`,
# the per-head output before `W_O`; a head's score is the mean difference averaged over its `d_head` units.

# %%
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import tl_steer
from tl_steer.methods.sadi import Sadi
from tl_steer.models import load
from tl_steer.pairs import ContrastSet

#: the docs build saves each figure there too; in Jupyter the figures show inline below their cells
FIGURES = os.environ.get("TL_STEER_FIGURES")
torch.set_grad_enabled(False)
model = load()

# %% [markdown]
# ## Fit on every layer's heads

# %%
pairs = ContrastSet(
    "sentiment",
    positive=[
        "I loved it. It was wonderful", "What a delightful, happy day", "This is the best gift ever, thank you",
        "The food was excellent and the staff were kind", "I am so glad we came here", "A beautiful, joyful film",
        "Everything went perfectly today", "She was thrilled with the result", "We had a fantastic time",
        "The show was brilliant and uplifting",
    ],
    negative=[
        "I hated it. It was awful", "What a miserable, gloomy day", "This is the worst gift ever, no thanks",
        "The food was terrible and the staff were rude", "I regret that we came here", "An ugly, depressing film",
        "Everything went wrong today", "She was furious about the result", "We had a horrible time",
        "The show was dull and depressing",
    ],
)
sadi = Sadi.from_contrast(model, pairs, site="z", k=8, strength=1.0)
print("scores:", tuple(sadi.scores.shape), " (layer, head)")
print("selected heads, best first:", sadi.selected())
print("hooks:", sadi.hook_names())

# %% [markdown]
# ## The layer × head heatmap
#
# `sadi.scores[i, h]` is head `h`'s mean (positive − negative) difference at layer `sadi.layers[i]`; the boxes mark
# the top-$K$ heads in `sadi.mask`. With `select="top"` (the default) the ranking is by *signed* score, so the mask
# picks heads more active on the positive side.

# %%
scores = sadi.scores.numpy()
lim = abs(scores).max()
fig, ax = plt.subplots(figsize=(5.2, 7.5))
im = ax.imshow(scores, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
for i, h in sadi.mask.nonzero().tolist():
    ax.add_patch(plt.Rectangle((h - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", lw=1.5))
ax.set_xticks(range(model.cfg.n_heads))
ax.set_yticks(range(0, len(sadi.layers), 2), [sadi.layers[i] for i in range(0, len(sadi.layers), 2)])
ax.set_xlabel("head")
ax.set_ylabel("layer")
ax.set_title(f"SADI head scores (mean diff over d_head)\nboxed: top-{sadi.k} mask")
fig.colorbar(im, ax=ax, fraction=0.05, label="positive − negative")
fig.tight_layout()
if FIGURES:
    fig.savefig(Path(FIGURES) / "03_sadi_heads.png", dpi=110)
plt.show()

# %% [markdown]
# ## Steering strength
#
# SADI's default position is the last prompt token (`positions="last_prompt"`), as in the paper; for generation we
# also edit every generated token with `positions="last_prompt+generated"`. `delta` scales the selected heads by
# `1 + delta`. We measure the next-token log-probability of `" great"` minus `" terrible"` as `delta` and $K$ vary.

# %%
prompts = ["I think the movie was", "My day at work was", "The new restaurant downtown is"]
good, bad = model.to_single_token(" great"), model.to_single_token(" terrible")
deltas = [-1.0, 0.0, 1.0, 2.0, 4.0]
ks = [4, 8, 16]
table = torch.zeros(len(ks), len(deltas))
for a, k in enumerate(ks):
    s_k = sadi.with_k(k)
    for b, d in enumerate(deltas):
        with tl_steer.steer(model, s_k.hooks(model, strength=d)):
            logits = model(prompts, padding_side="left")
        lp = logits[:, -1].log_softmax(-1)
        table[a, b] = (lp[:, good] - lp[:, bad]).mean()
print("rows K =", ks, " columns delta =", deltas)
print(table.round(decimals=2))

fig, ax = plt.subplots(figsize=(5.5, 3.6))
for a, k in enumerate(ks):
    ax.plot(deltas, table[a], marker="o", label=f"K = {k}")
ax.set_xlabel("delta")
ax.set_ylabel("log p(' great') - log p(' terrible')")
ax.set_title("SADI on heads, last prompt token")
ax.legend()
fig.tight_layout()
if FIGURES:
    fig.savefig(Path(FIGURES) / "03_sadi_strength.png", dpi=110)
plt.show()

# %% [markdown]
# ## Generation side by side

# %%
for d in (0.0, 2.0, 4.0):
    with tl_steer.steer(model, sadi.hooks(model, positions="last_prompt+generated", strength=d)):
        outs = model.generate(prompts, max_new_tokens=12, do_sample=False)
    print(f"delta {d}:")
    for p, o in zip(prompts, outs, strict=True):
        print(f"   {p!r} -> ...{o[len(p):]!r}")

# %% [markdown]
# The two measurements need not agree. The next-token score above rises with `delta`, but the continuations do not
# all turn more positive, and at large `delta` they lose fluency. A single-token metric is a quick check only. Judge
# a steering method on held-out tasks, as the [evaluation harness](../docs/evaluation.md) does.
#
# **Notes.** `Sadi.with_k(k)` and `with_strength(d)` are cheap (same scores, new mask or strength), which is how a
# sweep over $K$ and $\delta$ should run, scored on a *validation* split (the reference code picks them on the
# test split; see the [method page](../docs/methods/sadi.md)). The same class works on MLP neurons (`site="mlp_post"`) and
# residual units (`site="resid_pre"`).
