# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 4. Steering meets activation patching
#
# **Model:** the embedded SmolLM2-135M-Instruct. Every patching cell is one full forward (~0.2 s on a laptop CPU),
# so we patch a handful of `(layer, position)` cells chosen with `index_df` instead of a full sweep.
#
# Activation patching asks *where* information lives: run a corrupted prompt, paste in one activation from the
# clean run, and see how much of the clean behaviour comes back. A steering hook changes the model that is being
# patched. Because tl_steer hooks are ordinary TransformerLens hooks, `transformer_lens.patching` composes with them
# directly: anything inside `with tl_steer.steer(model, hooks):` -- including every forward that `patching` runs --
# sees the steering hook.
#
# The task is the indirect-object identification (IOI) sentence from the TL docs:
# *"When John and Mary went to the store, John gave a bottle to"* -> `" Mary"`. The corrupted prompt swaps the
# second name, which flips the answer. The metric is the logit difference `logit(" Mary") - logit(" John")`.

# %%
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from transformer_lens import patching

import tl_steer
from tl_steer.models import load
from tl_steer.sites import hook_name

#: the docs build saves each figure there too; in Jupyter the figures show inline below their cells
FIGURES = os.environ.get("TL_STEER_FIGURES")
torch.set_grad_enabled(False)

model = load()
clean = model.to_tokens("When John and Mary went to the store, John gave a bottle to")
corrupt = model.to_tokens("When John and Mary went to the store, Mary gave a bottle to")
MARY, JOHN = model.to_single_token(" Mary"), model.to_single_token(" John")
S2 = 10  # position of the second (swapped) name; position 0 is BOS
print([model.tokenizer.decode(t) for t in clean[0]])


def logit_diff(logits: torch.Tensor) -> torch.Tensor:
    return logits[0, -1, MARY] - logits[0, -1, JOHN]


_, clean_cache = model.run_with_cache(clean)
print(f"clean {logit_diff(model(clean)).item():.2f}   corrupted {logit_diff(model(corrupt)).item():.2f}")

# %% [markdown]
# ## A steering hook: erase the name direction at layer 16
#
# Our steering hook is a small concept-erasure edit. At `blocks.16.hook_resid_pre` we take the direction in which
# the clean and corrupted residual streams differ at the swapped name, and project it out at every position:
#
# $$ a' = a - (a \cdot u)\,u, \qquad u = \frac{r_{\text{clean}} - r_{\text{corrupt}}}{\lVert r_{\text{clean}} - r_{\text{corrupt}} \rVert} $$
#
# It is written the tl_steer way: a pure function of `(activation, hook)` that returns a new tensor and keeps
# dtype and device. (tl_steer's own methods are frozen dataclasses with the same `__call__`.)

# %%
ERASE_LAYER = 16
ERASE_HOOK = hook_name(ERASE_LAYER, "resid_pre")
_, corrupt_cache = model.run_with_cache(corrupt, names_filter=[ERASE_HOOK])
diff = clean_cache[ERASE_HOOK][0, S2] - corrupt_cache[ERASE_HOOK][0, S2]
u = diff / diff.norm()


def erase_name_direction(resid: torch.Tensor, hook) -> torch.Tensor:
    """Project ``u`` out of the residual stream at every position (pure: returns a new tensor)."""
    uu = u.to(dtype=resid.dtype, device=resid.device)
    return resid - (resid @ uu)[..., None] * uu


steering = [(ERASE_HOOK, erase_name_direction)]
with tl_steer.steer(model, steering):
    print(f"steered: clean {logit_diff(model(clean)).item():.2f}   corrupted {logit_diff(model(corrupt)).item():.2f}")

# %% [markdown]
# ## Patching curves with and without the hook
#
# `get_act_patch_resid_pre` with `index_df=` patches only the listed cells. (The functions in
# `transformer_lens.patching` are partials that pin `index_axis_names`, so pass `index_axis_names=None` along
# with `index_df`, or you get a bare `AssertionError`.) We patch `resid_pre` at the swapped name and at the final
# token over a few layers, once on the plain model and once inside `tl_steer.steer`.
#
# Note what is held fixed: the *clean cache* comes from the unsteered model. The steered curve therefore answers
# "if we paste the unsteered clean state into the steered corrupted run at this layer, what comes back?"
# To study the steered model on its own terms, build the clean cache inside the `with` block too.

# %%
layers = [0, 4, 8, 12, 14, 16, 18, 20, 22, 24, 26, 28]
positions = {"swapped name (pos 10)": S2, "final token": clean.shape[1] - 1}
index_df = pd.DataFrame(
    [{"layer": layer, "pos": pos} for pos in positions.values() for layer in layers]
)


def patch_curve() -> torch.Tensor:
    out = patching.get_act_patch_resid_pre(
        model, corrupt, clean_cache, logit_diff, index_df=index_df, index_axis_names=None
    )
    return out.reshape(len(positions), len(layers))


plain = patch_curve()
with tl_steer.steer(model, steering):
    steered = patch_curve()
    steered_clean = logit_diff(model(clean)).item()
    steered_corrupt = logit_diff(model(corrupt)).item()

for i, name in enumerate(positions):
    print(name)
    print("  layer        ", " ".join(f"{layer:6d}" for layer in layers))
    print("  plain        ", " ".join(f"{v:6.2f}" for v in plain[i].tolist()))
    print("  with erasure ", " ".join(f"{v:6.2f}" for v in steered[i].tolist()))

# %%
clean_ld, corrupt_ld = logit_diff(model(clean)).item(), logit_diff(model(corrupt)).item()
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
for ax, (i, name) in zip(axes, enumerate(positions), strict=True):
    ax.plot(layers, plain[i], marker="o", label="plain model")
    ax.plot(layers, steered[i], marker="s", label=f"erase hook at layer {ERASE_LAYER}")
    ax.axhline(clean_ld, color="C0", ls="--", lw=0.8, label="clean (plain)")
    ax.axhline(corrupt_ld, color="C0", ls=":", lw=0.8, label="corrupted (plain)")
    ax.axhline(steered_corrupt, color="C1", ls=":", lw=0.8, label="corrupted (steered)")
    ax.axvline(ERASE_LAYER, color="grey", lw=0.6)
    ax.set_title(f"patch resid_pre at {name}")
    ax.set_xlabel("layer")
axes[0].set_ylabel("logit(' Mary') - logit(' John')")
axes[1].legend(fontsize=8, loc="best")
fig.tight_layout()
if FIGURES:
    fig.savefig(Path(FIGURES) / "04_patching_with_steering.png", dpi=110)
plt.show()
print("hooks left on the model:", model.list_hooks())

# %% [markdown]
# ## Reading the curves
#
# * On the **plain model** the curves reproduce the textbook picture: patching the swapped name restores the clean
#   answer while the name information still sits at that position (up to about layer 18), and stops working in the
#   late layers once the information has been moved on; patching the final token does the opposite and only starts
#   to work between layers 22 and 24.
# * The **erasure hook** alone flips the clean prompt to the corrupted answer (the `steered:` line above). With it
#   active, patching the swapped name *before* layer 16 restores nothing: whatever we paste in is projected away again
#   when the stream reaches layer 16. Patching it at or after layer 16 restores only a little, because the hook
#   also removed the direction at the later tokens, which the model uses too. Patching the final token in the late
#   layers still restores the clean answer: by then it is written there, past the hook.
# * So a steering hook is part of the circuit you are patching. Patching results from an unsteered model do not
#   transfer to a steered one without running them again, and this is cheap to do: wrap the patching call in
#   `tl_steer.steer`.
#
# Two practical notes:
#
# * `tl_steer.steer` builds on `model.hooks(...)`. The hooks stay attached across the many `run_with_hooks` calls that
#   `patching` makes (they are removed when the `with` block exits, as the empty `list_hooks()` above shows).
# * Steering hooks that are *scoped* to prompt or generated positions use tl_steer's position tracker, which `steer`
#   attaches and resets; plain functions like the one above need nothing extra.
