# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 1. Your first steering vector
#
# **Model:** the embedded SmolLM2-135M-Instruct (`tl_steer.models.load()`, offline, ~2 s to boot on CPU).
#
# We build the simplest steering method there is: the *mean difference* of residual-stream activations between
# texts that have a property (positive sentiment) and texts that do not, added back into the residual stream
# while the model generates (CAA / ActAdd). Along the way we meet the three pieces every tl_steer method uses:
#
# 1. `tl_steer.collect` to read activations at a hook (batched, left-padded, only the layers needed);
# 2. a frozen method object (`SteeringVectors`) whose `.hooks(model, ...)` returns TransformerLens' own hook list;
# 3. `tl_steer.steer(model, hooks)`, a context manager around `model.hooks(...)` that also tracks positions, so
#    that the *same* hooks work for a plain forward, for `generate` with the KV cache, and for padded batches.

# %%
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in these tutorials downloads anything
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import tl_steer
from tl_steer.collect import collect
from tl_steer.methods.vector import SteeringVectors
from tl_steer.models import load
from tl_steer.sites import hook_name

#: the docs build saves each figure there too; in Jupyter the figures show inline below their cells
FIGURES = os.environ.get("TL_STEER_FIGURES")
torch.set_grad_enabled(False)

model = load()  # SmolLM2-135M-Instruct as a TransformerLens TransformerBridge
print(f"{model.cfg.n_layers} layers, d_model={model.cfg.d_model}, {model.cfg.n_heads} heads")

# %% [markdown]
# ## Contrastive texts and where to read them
#
# A steering vector is fitted from a `ContrastSet`: `positive` is always the side we want *more* of.
# We read the residual stream entering layer 12 (`blocks.12.hook_resid_pre`, a legacy name that TL 4 resolves as an
# alias of the bridge's `blocks.12.hook_in`), averaged over each text's real tokens (`read="mean"`; `"last"` works
# too but is noisier here, because the last token is a different word in every text).

# %%
from tl_steer.pairs import ContrastSet

pairs = ContrastSet(
    "sentiment",
    positive=[
        "I loved it. It was wonderful", "What a delightful, happy day", "This is the best gift ever, thank you",
        "The food was excellent and the staff were kind", "I am so glad we came here", "A beautiful, joyful film",
        "Everything went perfectly today", "She was thrilled with the result",
    ],
    negative=[
        "I hated it. It was awful", "What a miserable, gloomy day", "This is the worst gift ever, no thanks",
        "The food was terrible and the staff were rude", "I regret that we came here", "An ugly, depressing film",
        "Everything went wrong today", "She was furious about the result",
    ],
)
LAYER = 12
HOOK = hook_name(LAYER, "resid_pre")
print(HOOK)

acts = collect(model, list(pairs.positive) + list(pairs.negative), HOOK, read="mean", progress=False)
x = acts[HOOK]  # (16, 576) CPU float32
n = len(pairs.positive)
vector = x[:n].mean(0) - x[n:].mean(0)
print("activation norm (mean):", round(x.norm(dim=-1).mean().item(), 1), " vector norm:", round(vector.norm().item(), 1))

# %% [markdown]
# `vector` is a plain tensor. Wrapping it in `SteeringVectors` gives it a name-addressed, saveable home
# (`tl_steer.io.save`) and a `.hooks(model, positions=..., strength=...)` method. The *fitted* version of this method
# (mean difference with optional normalisation, from a `ContrastSet`) lives in `tl_steer.methods.diff_means`; doing it
# by hand once shows there is nothing hidden.

# %%
from tl_steer.methods.diff_means import mean_diff

fitted = mean_diff(model, pairs, layer=LAYER, read="mean")
print("same vector as by hand:", torch.allclose(fitted.vectors[HOOK], vector, atol=1e-4))

sv = SteeringVectors({HOOK: vector}, strength=3.0)
hooks = sv.hooks(model)  # [(hook_name, fn)] -- TransformerLens' own hook-list format
print(hooks[0][0], type(hooks[0][1]).__name__)

# %% [markdown]
# ## Generation side by side
#
# `generate` samples by default, so we pass `do_sample=False` to compare greedy continuations. A list of prompts
# is left-padded by TransformerLens; the scoped hooks never edit padding.

# %%
prompts = ["I think the movie was", "My day at work was", "The new restaurant downtown is"]
rows = {}
for coef in (0.0, 3.0, -3.0):
    with tl_steer.steer(model, sv.hooks(model, strength=coef)):
        outs = model.generate(prompts, max_new_tokens=12, do_sample=False, verbose=False)
    rows[coef] = [o[len(p):].replace("\n", " ") for o, p in zip(outs, prompts, strict=True)]

for i, p in enumerate(prompts):
    print(f"prompt: {p!r}")
    for coef in rows:
        print(f"  coef {coef:+.0f}: ...{rows[coef][i]}")

# %% [markdown]
# ## Measuring the effect instead of eyeballing it
#
# Two quick checks. Left: held-out texts projected on the vector separate by sentiment. Right: the next-token
# log-probability of `" great"` minus `" terrible"` after our prompts, as a function of the coefficient, steering
# every position (`positions="all"`) or only the last prompt token (`positions="last_prompt"`).

# %%
held_out_pos = ["A lovely surprise", "I enjoyed every minute", "Great news, we won"]
held_out_neg = ["A horrible surprise", "I suffered every minute", "Bad news, we lost"]
h = collect(model, held_out_pos + held_out_neg, HOOK, read="mean", progress=False)[HOOK]
unit = vector / vector.norm()
proj = h @ unit
print("projection, positive held-out:", [round(v, 1) for v in proj[:3].tolist()])
print("projection, negative held-out:", [round(v, 1) for v in proj[3:].tolist()])

good, bad = model.to_single_token(" great"), model.to_single_token(" terrible")
coefs = [-6, -4, -2, 0, 2, 4, 6]
curves = {}
for scope in ("all", "last_prompt"):
    curve = []
    for c in coefs:
        with tl_steer.steer(model, sv.hooks(model, positions=scope, strength=float(c))):
            logits = model(prompts, padding_side="left")  # list input + left padding: TL derives the mask
        lp = logits[:, -1].log_softmax(-1)
        curve.append((lp[:, good] - lp[:, bad]).mean().item())
    curves[scope] = curve
    print(scope, [round(v, 2) for v in curve])

fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
a.hist(proj[:3], bins=6, alpha=0.7, label="positive (held out)")
a.hist(proj[3:], bins=6, alpha=0.7, label="negative (held out)")
a.set_xlabel(f"projection on the steering vector ({HOOK})")
a.set_ylabel("texts")
a.legend()
for scope, curve in curves.items():
    b.plot(coefs, curve, marker="o", label=f"positions={scope!r}")
b.axhline(curves["all"][coefs.index(0)], color="grey", lw=0.8, ls="--")
b.set_xlabel("coefficient")
b.set_ylabel("log p(' great') - log p(' terrible')")
b.legend()
fig.suptitle("A mean-difference steering vector on SmolLM2-135M-Instruct, layer 12")
fig.tight_layout()
if FIGURES:
    fig.savefig(Path(FIGURES) / "01_first_steering_vector.png", dpi=110)
plt.show()

# %% [markdown]
# The hooks are gone after the `with` block: the model is untouched.

# %%
print("hooks left on the model:", model.list_hooks())

# %% [markdown]
# **Take-aways.** A steering method is data (a vector per hook name) plus a pure function; placement is a TL hook list
# you can pass to `run_with_hooks`, `model.hooks`, `run_with_cache` or `tl_steer.steer`. Next:
# [MAT-Steer on two attributes](02_mat_steer.md) learns *gated* vectors that fire only on the tokens that need them.
