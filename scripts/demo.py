"""The main job: steer the embedded SmolLM2-135M-Instruct with three methods and show what each one does.

1. **Mean difference (CAA)**: a vector read at ``blocks.{layer}.hook_resid_pre`` from contrastive sentiment texts
   (last token), added to every token; unsteered vs steered (+) vs steered (-) generations side by side.
2. **MAT-Steer**: two attributes (sentiment, politeness) fitted jointly on token activations (the tuned preset:
   gates start as one-vs-rest probes); for four new sentences, one per combination of the attributes (polite or
   rude, positive or negative), each attribute's gate on every token, then a steered generation.
3. **SADI**: the attention heads whose outputs differ most between the sentiment texts (global top-K over all
   layers), then the input-adaptive edit at the last prompt token.

About a minute on a 2-core CPU. ``python scripts/demo.py [--layer 12] [--coef 1] [--tokens 24]``

It lives outside the package because it names the methods it shows: inside ``tl_steer`` only a method's own module
and its registry entry name it.
"""

from __future__ import annotations

import argparse
import os
import textwrap
import time

import torch

POSITIVE = [
    "I love this, it is wonderful",
    "What a delightful, happy day",
    "This movie was fantastic and moving",
    "She was thrilled and grateful",
    "The food was delicious and the staff were kind",
    "I feel great, everything is going well",
]
NEGATIVE = [
    "I hate this, it is awful",
    "What a miserable, gloomy day",
    "This movie was terrible and boring",
    "She was furious and bitter",
    "The food was disgusting and the staff were rude",
    "I feel awful, everything is going wrong",
]
POLITE = [
    "Could you please pass me the salt?", "Would you mind closing the window, thank you",
    "Excuse me, may I ask a question?", "Thank you so much for your help",
    "Please let me know if you need anything", "Sorry to bother you, do you have a moment?",
]
RUDE = [
    "Pass me the salt, idiot.", "Shut the window, are you deaf?", "Hey you, answer my question now.",
    "You were useless, as usual", "Don't bother me, get lost", "Move, I don't have time for you",
]
PROMPTS = ["I think the movie was", "My weekend at the beach was", "The new restaurant downtown is"]
#: MAT-Steer edits only where a gate opens: one prompt that needs no steering, two that do
MAT_PROMPTS = ["My weekend at the beach was", "The dinner was disgusting and the waiter", "Shut up, you idiot, and"]
#: every combination of the two attributes, so that a gate that fires tracks *its* attribute, not the other one
GATE_TEXTS = [
    "Thank you, the dinner was lovely",         # polite, positive: no gate should fire
    "Thank you, but the dinner was disgusting",  # polite, negative: only the sentiment gate
    "Shut up, the dinner was lovely",            # rude, positive: only the politeness gate
    "Shut up, this dinner is disgusting",        # rude, negative: both
]
WIDTH = 44


def _columns(title: str, headers: list[str], columns: list[list[str]]) -> None:
    print(f"\n== {title}")
    print(" | ".join(f"{h:<{WIDTH}}" for h in headers))
    print("-" * ((WIDTH + 3) * len(headers)))
    for row in zip(*columns, strict=True):
        cols = [textwrap.wrap(" ".join(s.split()), WIDTH) or [""] for s in row]
        for i in range(max(map(len, cols))):
            print(" | ".join(f"{(col[i] if i < len(col) else ''):<{WIDTH}}" for col in cols))
        print("-" * ((WIDTH + 3) * len(headers)))


def run(model_name: str = "smollm2-135m-instruct", layer: int = 12, coef: float = 1.0, tokens: int = 24,
        positions: str = "all") -> dict[str, list]:
    """Run the demo on ``model_name``, print what each method did, and return the generations."""
    from tl_steer import Positions, hook_name, models, steer
    from tl_steer.collect import collect
    from tl_steer.methods.mat_steer import MatSteer
    from tl_steer.methods.sadi import Sadi
    from tl_steer.methods.vector import SteeringVectors
    from tl_steer.pairs import ContrastSet

    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = models.load(model_name)
    kw = dict(max_new_tokens=tokens, do_sample=False, stop_at_eos=False, verbose=False)
    out: dict[str, list] = {}
    with torch.no_grad():
        plain = model.generate(PROMPTS, **kw)

    # 1. mean difference
    name = hook_name(layer, "resid_pre")
    pos = collect(model, POSITIVE, [name], progress=False)[name]
    neg = collect(model, NEGATIVE, [name], progress=False)[name]
    vector = pos.mean(0) - neg.mean(0)
    sv = SteeringVectors({name: vector}, strength=coef)
    with torch.no_grad():
        with steer(model, sv.hooks(model, positions=Positions(positions))):
            steered = model.generate(PROMPTS, **kw)
        with steer(model, sv.hooks(model, positions=Positions(positions), strength=-coef)):
            anti = model.generate(PROMPTS, **kw)
    print(f"tl_steer demo: {model_name}, greedy, {tokens} new tokens")
    _columns(f"1. mean difference at {name} (|v| = {vector.norm():.1f}), coef ±{coef}, positions={positions}",
             ["unsteered", f"steered +{coef} (positive)", f"steered -{coef} (negative)"], [plain, steered, anti])
    out["mean_diff"] = list(zip(plain, steered, anti, strict=True))

    # 2. MAT-Steer: two attributes, token-level gates
    sentiment = ContrastSet("sentiment", tuple(POSITIVE), tuple(NEGATIVE))
    politeness = ContrastSet("politeness", tuple(POLITE), tuple(RUDE))
    mat_hook = hook_name(10, "resid_pre")
    desirable, undesirable = {}, {}
    for s in (sentiment, politeness):
        for side, store in ((s.positive, desirable), (s.negative, undesirable)):
            c = collect(model, list(side), mat_hook, read="all", prepend_bos=False, progress=False)
            store[s.attribute] = c.acts[mat_hook][c.mask]  # every token of every text
    with torch.enable_grad():
        mat = MatSteer.fit(desirable, undesirable, mat_hook, seed=0, progress=False)
    print(f"\n== 2. MAT-Steer at {mat_hook}: attributes {list(mat.attributes)}, fitted in {mat.history.seconds:.1f} s "
          "on token activations; each attribute's gate on every token (* where it is > 0.5):")
    c = collect(model, GATE_TEXTS, mat_hook, read="all", prepend_bos=False, progress=False)
    gates = mat.gates(c.acts[mat_hook])
    fired = []
    for i, text in enumerate(GATE_TEXTS):
        g = gates[i][c.mask[i]]
        toks = model.to_str_tokens(text, prepend_bos=False)
        print(f"   {text!r}")
        for k, a in enumerate(mat.attributes):
            cells = [f"{t.strip() or repr(t)}{'*' if v > 0.5 else ''}:{v:.2f}" for t, v in zip(toks, g[:, k].tolist(), strict=True)]
            on = [t.strip() for t, v in zip(toks, g[:, k].tolist(), strict=True) if v > 0.5]
            fired.append((text, a, on))
            print(f"      {a:<11} " + "  ".join(cells))
            print(f"      {'':<11} gate > 0.5 on {on}")
    mat_plain = model.generate(MAT_PROMPTS, **kw)
    with torch.no_grad(), steer(model, mat.hooks(model)):
        mat_steered = model.generate(MAT_PROMPTS, **kw)
    _columns("MAT-Steer steering generation (every token; each gate decides per token)", ["unsteered", "MAT-Steer"],
             [mat_plain, mat_steered])
    out["mat_steer"] = {"gates": fired, "generations": list(zip(mat_plain, mat_steered, strict=True))}

    # 3. SADI: heads
    sadi = Sadi.from_contrast(model, sentiment, site="z", k=4, strength=9.0)
    picked = ", ".join(f"L{layer_}.H{head}" for layer_, head in sadi.selected())
    with torch.no_grad(), steer(model, sadi.hooks(model)):
        sadi_steered = model.generate(PROMPTS, **kw)
    print(f"\n== 3. SADI: heads picked by mean difference over all {model.cfg.n_layers} layers (top 4): {picked}; "
          "edit a + 9 * (M ⊙ a) at the last prompt token")
    _columns("SADI steering generation", ["unsteered", "SADI (heads, s = 10)"], [plain, sadi_steered])
    out["sadi"] = {"heads": sadi.selected(), "generations": list(zip(plain, sadi_steered, strict=True))}
    print(f"\ndone in {time.perf_counter() - t0:.1f} s")
    return out


def main(argv: list[str] | None = None) -> None:
    """Entry point: parse arguments, run, return the exit code."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--layer", type=int, default=12)
    ap.add_argument("--coef", type=float, default=1.0)
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--positions", default="all", choices=["all", "prompt", "generated", "last_prompt"])
    a = ap.parse_args(argv)
    run(a.model, a.layer, a.coef, a.tokens, a.positions)


if __name__ == "__main__":
    main()
