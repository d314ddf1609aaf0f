"""Device check: every method's hooks on SmolLM2 on the chosen device (CUDA where available).

For CAA, ITI, SADI and MAT-Steer (fitted on a few sentiment pairs) it checks, on the device and dtype given:

* the hook output keeps the activation's dtype and device and never edits it in place;
* greedy generation is the same batched (left-padded) as one prompt at a time, and with the KV cache on and off;
* the steered generation differs from the unsteered one (the hooks do something);
* sharded (issue 23): the plain HF model split over a device map (the first half of the layers on ``--device``,
  the rest on the CPU; accelerate moves activations between them) steered with ``hf_steer`` gives the bridge's
  logits, for every method.

It prints one line per check and exits non-zero on any failure. It measures nothing against a baseline.

    python benchmarks/device_check.py --device cuda [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from tl_steer import ContrastSet, registry, steer  # noqa: E402
from tl_steer.eval import steering  # noqa: E402
from tl_steer.models import load  # noqa: E402

POS = ["I love this, it is wonderful", "What a delightful, happy day", "This movie was fantastic",
       "She was thrilled and grateful", "The food was delicious", "I feel great today"]
NEG = ["I hate this, it is awful", "What a miserable, gloomy day", "This movie was terrible",
       "She was furious and bitter", "The food was disgusting", "I feel awful today"]
PROMPTS = ["Hi", "I think the movie was", "My weekend at the beach was"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--tokens", type=int, default=6)
    a = ap.parse_args(argv)
    dtype = getattr(torch, a.dtype)
    t0 = time.perf_counter()
    model = load(device=a.device, dtype=dtype)
    print(f"model on {model.cfg.device}, dtype {dtype}, load {time.perf_counter() - t0:.1f} s")
    sets = [ContrastSet("sentiment", POS, NEG)]
    opts = steering.FitOptions(layer=10, k=8, progress=False, extra={"epochs": 20})
    fitted = steering.fit_many(list(steering.fitted_names()), model, sets, opts)
    kw = dict(max_new_tokens=a.tokens, do_sample=False, stop_at_eos=False, verbose=False)
    failures = 0

    def check(ok: bool, what: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"[{'ok' if ok else 'FAIL'}] {what}")

    with torch.no_grad():
        base = model.generate(PROMPTS, **kw)
        for method, f in fitted.items():
            strength = registry.get(method).grid[1]  # a mid-grid strength of each method
            hooks = steering.hooks(method, f, model, positions="all", strength=strength)
            seen = []

            def spy(act, hook, _seen=seen):
                _seen.append((act.dtype, act.device))
                return act

            name = hooks[0][0]
            with steer(model, hooks, [(name, spy)]):
                batched = model.generate(PROMPTS, **kw)
                single = [model.generate(p, **kw) for p in PROMPTS]
                uncached = [model.generate(p, use_past_kv_cache=False, **kw) for p in PROMPTS]
                x = torch.randn(2, 3, *f_shape(model, name), device=model.cfg.device, dtype=dtype)
                x0 = x.clone()
                raw = getattr(hooks[0][1], "fn", None)  # the pure per-site function inside the position scope
                y = raw(x, hook=None) if raw is not None else None
            check(all(d == dtype and dev.type == torch.device(a.device).type for d, dev in seen),
                  f"{method}: activations after the hook keep dtype {dtype} and device {a.device}")
            if y is not None:
                check(torch.equal(x, x0) and y.dtype == dtype and y.device == x.device,
                      f"{method}: hook is pure (input untouched) and keeps dtype/device on a raw tensor")
            check(batched == single, f"{method}: batched left-padded == one-by-one")
            check(single == uncached, f"{method}: KV-cached == uncached")
            check(batched != base, f"{method}: steered != unsteered ({batched[1][:60]!r})")
        for method, f in fitted.items():
            hooks = steering.hooks(method, f, model, positions="all", strength=registry.get(method).grid[1])
            diff = sharded_diff(model, hooks, a.device, dtype)
            check(diff < (1e-3 if dtype == torch.float32 else 0.5),
                  f"{method}: hf_steer on a model sharded over {a.device} + cpu matches the bridge (max |Δ| {diff:.1e})")
    print(f"{failures} failure(s); {time.perf_counter() - t0:.1f} s")
    return 1 if failures else 0


_SHARDED: dict = {}


def sharded_diff(model, hooks, device: str, dtype) -> float:
    """Max |Δ logit| between the steered bridge and ``hf_steer`` on the plain HF SmolLM2 dispatched over a device
    map: layers below the middle on ``device``, the rest (and the head) on the CPU."""
    from accelerate import dispatch_model

    from tl_steer.fast import hf_steer
    from tl_steer.models import load_hf

    if "hf" not in _SHARDED:
        hf, _ = load_hf("smollm2-135m-instruct", dtype=dtype)
        n = hf.config.num_hidden_layers
        dmap = {"model.embed_tokens": device, "model.rotary_emb": device, "model.norm": "cpu", "lm_head": "cpu",
                **{f"model.layers.{i}": device if i < n // 2 else "cpu" for i in range(n)}}
        _SHARDED["hf"] = dispatch_model(hf, device_map=dmap, main_device=device, force_hooks=True)
    hf = _SHARDED["hf"]
    ids = model.to_tokens(PROMPTS[1])
    with steer(model, hooks):
        want = model(ids).float().cpu()
    with hf_steer(model, hf, hooks):
        got = hf(input_ids=ids.to(device)).logits.float().cpu()
    return float((got - want).abs().max())


def f_shape(model, name: str) -> tuple[int, ...]:
    from tl_steer.sites import feature_shape, site_of

    return feature_shape(model, site_of(name)[1])


if __name__ == "__main__":
    sys.exit(main())
