"""Time ``MatSteer.fit`` per epoch on synthetic activations: N = 1k, 4k, 16k rows per side per attribute,
d = 576 (SmolLM2's d_model), T = 3 attributes, batches of 16 + 16 per attribute (the paper's setup).

The MMD is computed per mini-batch (B x B kernels), so an epoch is N / B steps of constant cost and its time
should grow ~linearly with N (the reference code's full-set MMD grows quadratically). Ratios are against N = 1k
measured in the same run.

    OMP_NUM_THREADS=1 python benchmarks/bench_mat_steer_fit.py [--epochs 2] [--sizes 1000 4000 16000] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch

from tl_steer.methods.mat_steer import MatSteer


def data(n: int, d: int, attrs: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(attrs, d, generator=g)
    good = {f"a{t}": torch.randn(n, d, generator=g) + u[t] for t in range(attrs)}
    bad = {f"a{t}": torch.randn(n, d, generator=g) - u[t] for t in range(attrs)}
    return good, bad


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000])
    ap.add_argument("--d", type=int, default=576)
    ap.add_argument("--attrs", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--kernel", default="median")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}, d={args.d}, "
          f"T={args.attrs}, batch 16+16 per attribute, kernel={args.kernel}, {args.epochs} epochs per size")
    base = None
    print(f"{'N':>7} {'steps/epoch':>11} {'s/epoch':>9} {'ms/step':>8} {'x vs 1st':>9} {'N ratio':>8} {'peak MiB':>9}")
    for n in args.sizes:
        good, bad = data(n, args.d, args.attrs)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        hist = MatSteer.fit(good, bad, "blocks.10.hook_resid_pre", epochs=args.epochs, kernel=args.kernel,
                               val_fraction=0.0, progress=False, device=args.device)
        total = time.perf_counter() - t0
        per_epoch = min(hist.column("seconds"))
        steps = -(-n // 16)
        peak = torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda") else float("nan")
        if base is None:
            base = (n, per_epoch)
        print(f"{n:>7} {steps:>11} {per_epoch:>9.3f} {1000 * per_epoch / steps:>8.2f} {per_epoch / base[1]:>9.2f} "
              f"{n / base[0]:>8.1f} {peak:>9.1f}   (fit total {total:.2f} s)")
    print("linear scaling means 's/epoch x vs 1st' tracks 'N ratio'; quadratic would be its square.")


if __name__ == "__main__":
    main()
