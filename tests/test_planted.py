"""The planted-attribute benchmark runs (``--quick``), resumes from its checkpoint, and the gate levers it measures
behave as measured: gates started from the mean-difference probe separate the planted attribute as well as the probe
(AUC within 0.03) before training, where the default random start is near chance."""

from __future__ import annotations

import json

import pytest
import torch
from bench_import import load_benchmark


def _planted():
    return load_benchmark('planted')


def test_quick_run_and_resume(tmp_path, capsys):
    pytest.importorskip("sklearn")
    planted = _planted()
    assert planted.main(["--quick", "--out", str(tmp_path)]) == 0
    rows = [json.loads(x) for x in (tmp_path / "cells.jsonl").read_text().splitlines()]
    assert {r["config"] for r in rows} == set(planted.CONFIGS)
    for r in rows:
        assert 0.0 <= r["auc"] <= 1.0 and 0.5 < r["probe_auc"] <= 1.0 and r["edit_des"] >= 0.0
    assert planted.main(["--quick", "--out", str(tmp_path)]) == 0  # resumes: nothing is run twice
    assert len((tmp_path / "cells.jsonl").read_text().splitlines()) == len(rows)
    assert "| gaussian | 32 | 60 | 2 |" in (tmp_path / "planted.md").read_text()
    summary = (tmp_path / "planted_summary.md").read_text()
    assert "| gaussian | 32 | 60 | 2 | 0.0 |" in summary and "of 1 |" in summary


def test_auc_is_the_mann_whitney_statistic():
    planted = _planted()
    assert planted.auc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 1.0
    assert planted.auc(torch.tensor([0.0]), torch.tensor([1.0])) == 0.0
    assert planted.auc(torch.tensor([1.0, 1.0]), torch.tensor([1.0])) == 0.5


def test_probe_started_gates_separate_like_the_probe():
    """d = 576, n = 200, T = 3, shift 3 sigma: before any training step, probe-started gates have the probe's AUC;
    the random start (the default) is near chance. (Training with the MAT-Steer loss then erodes them: see
    docs/methods/mat_steer.md, 'Planted attributes'.)"""
    planted = _planted()
    from tl_steer.methods.mat_steer import MatSteer

    g = torch.Generator().manual_seed(0)
    U = planted.directions(576, 3, 0.0, g)
    des = {f"a{t}": torch.randn(200, 576, generator=g) for t in range(3)}
    und = {f"a{t}": torch.randn(200, 576, generator=g) + 3 * U[t] for t in range(3)}
    test_des = torch.randn(1000, 576, generator=g)
    for gate_init, low, high in (("probe", 0.92, 1.0), ("random", 0.3, 0.75)):
        m = MatSteer.fit(des, und, "blocks.0.hook_resid_pre", gate_init=gate_init, epochs=1, lr=1e-12,
                            val_fraction=0.0, progress=False)
        for t in range(3):
            w = und[f"a{t}"].mean(0) - des[f"a{t}"].mean(0)
            fresh = torch.randn(1000, 576, generator=g) + 3 * U[t]
            probe = planted.auc(fresh @ w, test_des @ w)
            gate = planted.auc(m.gates(fresh[None])[0][:, t], m.gates(test_des[None])[0][:, t])
            assert low <= gate <= high, (gate_init, t, gate)
            if gate_init == "probe":
                assert gate >= probe - 0.03


def test_tuned_preset_meets_the_separation_targets_in_the_issue_cell():
    """The default (tuned) preset, trained, on the issue's cell (d = 576, n = 200 per side, T = 3 orthogonal, shift
    3 sigma): every gate within 0.03 of the mean-difference probe's AUC and >= 0.90 AUC against the other attributes'
    rows; the edit removes most of the shift and edits desirable rows far less (the removal/edit pair of the issue is
    out of reach of any linear gate here, see the next test)."""
    pytest.importorskip("sklearn")
    planted = _planted()
    cell = {"base": "gaussian", "d": 576, "n": 200, "T": 3, "corr": 0.0, "shift": 3.0, "seed": 0, "epochs": 100}
    (r,) = planted.run_cell(cell, None, {"tuned": {}}, n_test=1000)
    assert r["auc"] >= r["probe_auc"] - 0.03, r
    assert r["auc_others"] >= 0.90, r
    assert r["removed"] >= 0.6 and r["edit_des"] <= 0.3, r
    assert r["g_own"] > 5 * r["g_des"], r


def test_no_linear_gate_removes_90_percent_with_a_10_percent_edit_at_3_sigma():
    """The infeasibility the method page states, checked: oracle gates sigmoid(k (u_t . x - c)) on the *true*
    directions, with the exact theta_t = -3 u_t, over a grid of steepness k and threshold c, never remove >= 90% of
    the shift while editing desirable rows by <= 10% of it (d = 576, T = 3, shift 3 sigma); they do reach 90% removal
    with a larger edit, so the grid is not too small to reach the target."""
    planted = _planted()
    from tl_steer.methods.mat_steer import MatSteer

    g = torch.Generator().manual_seed(1)
    U = planted.directions(576, 3, 0.0, g)
    des = torch.randn(1000, 576, generator=g)
    und = [torch.randn(1000, 576, generator=g) + 3 * U[t] for t in range(3)]
    feasible, reaches_90 = [], []
    for k in (1.0, 2.0, 4.0, 8.0, 16.0, 64.0):
        for c in torch.linspace(0.0, 3.0, 13).tolist():
            m = MatSteer("blocks.0.hook_resid_pre", -3 * U, k * U, torch.full((3,), -k * c), ("a0", "a1", "a2"))
            removed = sum(float(((und[t] - m(und[t][None])[0]) @ U[t]).mean()) / 3 for t in range(3)) / 3
            edit = float((m(des[None])[0] - des).norm(dim=1).mean()) / 3
            reaches_90.append(removed >= 0.90)
            feasible.append(removed >= 0.90 and edit <= 0.10)
    assert any(reaches_90)
    assert not any(feasible)


@pytest.mark.slow
@pytest.mark.data
def test_tuned_preset_meets_every_target_on_smollm2_activations(data_dir):
    """On SmolLM2's real residual stream (middle layer, neutral BoolQ text, outliers and large norms kept), the issue's
    cell (d = 576, n = 200, T = 3, shift 3 sigma along each u_t): all four targets, as in the committed grid
    (3/3 seeds there)."""
    pytest.importorskip("sklearn")
    planted = _planted()
    pool = planted.real_pool("smollm2-135m-instruct", 4000, n_texts=60)
    cell = {"base": "smollm2", "d": 576, "n": 200, "T": 3, "corr": 0.0, "shift": 3.0, "seed": 0, "epochs": 100}
    (r,) = planted.run_cell(cell, pool, {"tuned": {}}, n_test=500)
    assert all(planted.targets(r).values()), r
