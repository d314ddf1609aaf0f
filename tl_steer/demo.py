"""The main job: steer the embedded SmolLM2-135M-Instruct and print unsteered vs steered generations side by side.

A mean-difference (CAA-style) vector is read at ``blocks.{layer}.hook_resid_pre`` from a few contrastive
sentiment pairs (last token), then added to every generated token with ``tl_steer.steer``.

    python -m tl_steer.demo [--layer 12] [--coef 1] [--tokens 24]
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
PROMPTS = ["I think the movie was", "My weekend at the beach was", "The new restaurant downtown is"]


def run(model_name: str = "smollm2-135m-instruct", layer: int = 12, coef: float = 1.0, tokens: int = 24,
        positions: str = "all") -> list[tuple[str, str, str]]:
    from . import Positions, hook_name, steer
    from .collect import collect
    from .methods.vector import SteeringVectors
    from .models import load

    t0 = time.perf_counter()
    model = load(model_name)
    name = hook_name(layer, "resid_pre")
    pos = collect(model, POSITIVE, [name], progress=False)[name]
    neg = collect(model, NEGATIVE, [name], progress=False)[name]
    vector = pos.mean(0) - neg.mean(0)
    sv = SteeringVectors({name: vector}, strength=coef)
    kw = dict(max_new_tokens=tokens, do_sample=False, stop_at_eos=False, verbose=False)
    with torch.no_grad():
        plain = model.generate(PROMPTS, **kw)
        with steer(model, sv.hooks(model, positions=Positions(positions))):
            steered = model.generate(PROMPTS, **kw)
        with steer(model, sv.hooks(model, positions=Positions(positions), strength=-coef)):
            anti = model.generate(PROMPTS, **kw)
    rows = list(zip(plain, steered, anti, strict=True))
    width = 44
    print(f"tl_steer demo: {model_name}, mean-difference vector at {name} (|v| = {vector.norm():.1f}), "
          f"coef ±{coef}, positions={positions}, greedy, {tokens} new tokens")
    print(f"{'unsteered':<{width}} | {'steered +' + str(coef) + ' (positive)':<{width}} | steered -{coef} (negative)")
    print("-" * (3 * width + 6))
    for p, (a, b, c) in zip(PROMPTS, rows, strict=True):
        cols = [textwrap.wrap(" ".join(s.split()), width) or [""] for s in (a, b, c)]
        for i in range(max(map(len, cols))):
            print(" | ".join(f"{(col[i] if i < len(col) else ''):<{width}}" for col in cols))
        print("-" * (3 * width + 6))
        del p
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return rows


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser(prog="tl-steer demo", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--layer", type=int, default=12)
    ap.add_argument("--coef", type=float, default=1.0)
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--positions", default="all", choices=["all", "prompt", "generated", "last_prompt"])
    a = ap.parse_args(argv)
    run(a.model, a.layer, a.coef, a.tokens, a.positions)


if __name__ == "__main__":
    main()
