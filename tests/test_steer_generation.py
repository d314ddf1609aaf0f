"""benchmarks/steer_generation.py end to end on the tiny model (--quick), the scorers on known texts, resume."""

from __future__ import annotations

import json

import pytest
from bench_import import load_benchmark


def test_scorers_on_known_texts():
    sg = load_benchmark("steer_generation")
    assert sg.sentiment("What a wonderful, happy day") > 0.5 > -0.5 > sg.sentiment("This is awful and I hate it")
    assert sg.wedding("The bride was late.") == 1.0 and sg.wedding("The bridge was late.") == 0.0
    assert sg.distinct(["a b a b"], 1) == 0.5 and sg.distinct(["a b c"], 2) == 1.0
    mean, lo, hi = sg.paired_ci([0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0])
    assert (mean, lo, hi) == (1.0, 1.0, 1.0)


@pytest.mark.data
def test_quick_run_and_resume(tmp_path):
    sg = load_benchmark("steer_generation")
    args = ["--models", "tiny", "--seeds", "0", "--quick", "--methods", "caa", "caa_sum", "--out", str(tmp_path)]
    assert sg.main(args) == 0
    rows = [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()]
    base = [r for r in rows if r["method"] == "none"]
    assert {r["prompts"] for r in base} == {"neutral", "sentiment", "wedding"}
    assert {(r["method"], r["attribute"]) for r in rows if r["method"] != "none"} == {
        ("caa", "sentiment"), ("caa", "wedding"), ("caa_sum", "both")}
    for r in rows:
        assert len(r["continuations"]) == len(r["sentiment"]) == len(r["wedding"]) == len(r["ppl"]) == 2
        assert all(-1.0 <= x <= 1.0 for x in r["sentiment"]) and set(r["wedding"]) <= {0.0, 1.0}
    # the same seed and no hooks give the same continuations: sampling is seeded
    again = sg.measure(sg.load_named("tiny-hf", device="cpu"), sg.PROMPTS[:2], [], 0)
    assert again["continuations"] == next(r for r in base if r["prompts"] == "neutral")["continuations"]
    n = len(rows)
    assert sg.main(args) == 0
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == n
    assert "| tiny | caa_sum | both |" in (tmp_path / "steer_generation.md").read_text()
    assert (tmp_path / "generation_tiny.png").stat().st_size > 0


def test_paired_test_and_holm_marks():
    sg = load_benchmark("steer_generation")
    p, sd = sg.paired_test([0.0] * 30, [1.0 + 0.1 * (i % 3) for i in range(30)])
    assert p < 1e-6 and sd > 0
    assert sg.paired_test([0.0, 0.0], [0.0, 0.0]) == (None, None)  # no difference: no test
    # every pair moved by the same amount (every continuation gained the attribute): the exact sign test, no sd
    assert sg.paired_test([0.0] * 48, [1.0] * 48) == (2 * 0.5 ** 48, None)
    assert sg.paired_test([0.0, 0.0], [1.0, 1.0]) == (0.5, None)
    rows = []
    for method, attr, shift in (("none", "none", 0.0), ("caa", "sentiment", 0.9), ("caa", "wedding", 0.0)):
        for seed in (0, 1, 2):
            vals = [shift + 0.05 * ((seed * 7 + i) % 5) for i in range(16)]
            rows.append({"model": "m", "method": method, "attribute": attr, "strength": 0.0 if method == "none" else 1.0,
                         "prompts": "neutral", "seed": seed, "sentiment": vals, "wedding": [0.0] * 16,
                         "ppl": [10.0] * 16, "distinct2": 0.9})
    md = sg.report(rows)
    big = next(line for line in md.splitlines() if "| caa | sentiment |" in line)
    null = next(line for line in md.splitlines() if "| caa | wedding |" in line)
    assert big.split("|")[5].strip().endswith("✓") and "✓" not in null  # a real shift survives Holm, no shift does not
    assert "Holm" in md and "Minimum detectable sentiment" in md
    # Holm is per model: a moderate effect (p ~ 0.01, alone in its model's family) keeps its mark when another model's
    # ten null tests join the report (pooled, Holm would multiply its p by 11 and drop the mark)
    def noisy(model, method, attr, s, shift):
        return [{"model": model, "method": method, "attribute": attr, "strength": s, "prompts": "neutral", "seed": seed,
                 "sentiment": [0.1 * ((i * 3 + seed) % 7) + shift + (0.1 * (((i * 5 + seed * 2) % 3) - 1) if shift else 0)
                               for i in range(16)], "wedding": [0.0] * 16, "ppl": [10.0] * 16, "distinct2": 0.9}
                for seed in (0, 1, 2)]
    mine = noisy("m", "none", "none", 0.0, 0.0) + noisy("m", "caa", "sentiment", 1.0, 0.03)
    alone = next(x for x in sg.report(mine).splitlines() if "| caa | sentiment |" in x)
    assert alone.split("|")[5].strip().endswith("✓")
    other = noisy("n", "none", "none", 0.0, 0.0) + [r for k in range(10) for r in noisy("n", "caa", "sentiment", 1.0 + k, 1e-3 * k + 1e-9)]
    both = sg.report(mine + other)
    assert next(x for x in both.splitlines() if x.startswith("| m | caa | sentiment |")) == alone
    assert both.count("this model's table") == 2
