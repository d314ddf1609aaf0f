"""The planted suites for CAA, PCA, SADI and ITI (``benchmarks/planted_methods.py --quick``): each method recovers
what was planted as well as its ceiling allows, and SADI's head score misses a shift whose units average to zero
(the suite can tell methods apart)."""

from __future__ import annotations

import json

from bench_import import load_benchmark


def _module():
    return load_benchmark('planted_methods')


def test_quick_suite_recovers_the_planted_truth_and_resumes(tmp_path):
    pm = _module()
    assert pm.main(["--quick", "--out", str(tmp_path)]) == 0
    rows = [json.loads(x) for x in (tmp_path / "cells.jsonl").read_text().splitlines()]
    by = {(r["suite"], r.get("pattern") or r.get("pairing")): r for r in rows}
    d, paired = by[("direction", "unpaired")], by[("direction", "paired")]
    # n = 200, 3 sigma in d = 576, unrelated rows: the noise leaves a cosine of about 0.78; CAA (the mean
    # difference) reaches it, PCA comes close; pairs that differ only in the attribute leave both near 0.98
    assert 0.6 < d["ceiling"] < 0.9 and abs(d["ceiling"] - d["first_order"]) < 0.03
    assert abs(d["caa_cos"] - d["ceiling"]) < 0.05, d
    assert d["pca_cos"] > d["ceiling"] - 0.15, d
    assert paired["ceiling"] > 0.95 and paired["caa_cos"] > paired["ceiling"] - 0.02, paired
    assert paired["pca_cos"] > paired["ceiling"] - 0.02, paired
    mean, rand = by[("heads", "mean")], by[("heads", "random")]
    assert mean["sadi_recall"] == mean["iti_recall"] == mean["ceiling_recall"] == 1.0, mean
    # a random direction inside each planted head: its units average ~0, so SADI's head score (the mean over
    # d_head) cannot see it; ITI's probes and the chi-square ceiling still find every planted head
    assert rand["iti_recall"] == rand["ceiling_recall"] == 1.0, rand
    assert rand["sadi_recall"] <= 0.5, rand
    assert mean["iti_cos"] > mean["cos_ceiling"] - 0.05
    n = by[("neurons", None)]
    assert n["sadi_recall"] == n["ceiling_recall"] == 1.0 and n["chance_recall"] < 0.01
    assert pm.main(["--quick", "--out", str(tmp_path)]) == 0  # resumes: nothing runs twice
    assert len((tmp_path / "cells.jsonl").read_text().splitlines()) == len(rows)
    assert "**heads**" in (tmp_path / "planted_methods.md").read_text()


def test_noise_ceiling_is_the_mean_difference_cosine():
    """The analytic ceiling matches the cosine of simulated mean-difference estimates (isotropic Gaussian)."""
    import torch

    pm = _module()
    g = torch.Generator().manual_seed(0)
    d, n = 256, 100
    u = torch.zeros(d)
    u[0] = 1.0
    cos = [pm.cos((torch.randn(n, d, generator=g) + 2 * u).mean(0) - torch.randn(n, d, generator=g).mean(0), u)
           for _ in range(200)]
    assert abs(sum(cos) / len(cos) - pm.noise_ceiling(2.0, float(d), n, n)) < 0.02
