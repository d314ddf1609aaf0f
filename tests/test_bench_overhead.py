"""benchmarks/bench_overhead.py end to end on the tiny HF model (--quick): every registered method is timed against
the unsteered bridge, and the cached sweep agrees with full scoring."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tl_steer import registry

ROOT = Path(__file__).resolve().parents[1]


def test_bench_overhead_quick(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_overhead", ROOT / "benchmarks" / "bench_overhead.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "b.json"
    assert mod.main(["--quick", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    for key in ("forward_8x64", "generate_batch1", "generate_batch8"):
        conds = set(r[key]["ratio_vs_bridge"])
        assert {f"bridge+{n}" for n in registry.names()} <= conds and r[key]["ratio_vs_bridge"]["bridge"] == 1.0
        assert all(v > 0 for v in r[key]["ratio_vs_bridge"].values())
    gen = r["generate_batch8"]["ratio_vs_hf"]
    assert {f"fast path+{n}" for n in registry.names()} <= set(gen) and gen["plain HF"] == 1.0
    assert r["collect"]["ratio_vs_loop"]["collect"] > 0 and set(r["mat_steer_fit"]) == {"200"}
    assert r["eval"]["max_abs_logprob_diff"] < 1e-4 and r["eval"]["sweep_points"] == 8
    assert r["eval"]["shared_prompt_mc"]["max_abs_logprob_diff"] < 1e-4
    assert all(v["max_abs_diff"] < 1e-4 and v["speedup"] > 0 for v in r["eval"]["per_row_strength_sweep"].values())
    from tl_steer.arch import ARCH_SITES

    assert set(r["architectures"]) == set(ARCH_SITES)
    assert all(v > 0 for a in r["architectures"].values() for v in a.values())
    assert r["export"]["max_logit_diff"] < 1e-4
    for key in ("forward_8x64", "generate_batch1", "generate_batch8"):
        row = r["export"][key]["ratio_vs_hf"]
        assert row["plain HF"] == 1.0 and row["exported checkpoint, plain HF"] > 0
