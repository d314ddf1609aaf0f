"""MAT-Steer's reference protocol pieces: reference-style attribute data, by-question splits, edits at another
site, and paired comparisons (paired bootstrap, McNemar)."""

from __future__ import annotations

import math

import pytest
import torch

import tl_steer as ts
from tl_steer.eval.metrics import mcnemar_exact, paired
from tl_steer.eval.pairs import build_contrast
from tl_steer.methods.iti import Iti, group_split


@pytest.mark.data
def test_reference_style_contrast_sets(data_dir):
    tqa = build_contrast("truthfulqa_mc2", data_dir, limit=5, style="reference")
    assert all(t.startswith("Q: ") and " A: " in t and "\n" not in t for t in tqa.positive + tqa.negative)
    assert not tqa.positive[0].startswith("Q: What is human life expectancy")  # no primer in the fitted texts
    assert len(tqa.positive) != len(tqa.negative) and len(set(tqa.groups[0])) == 5  # unpaired, grouped by question
    bbq = build_contrast("bbq", data_dir, limit=6, style="reference")
    assert len(bbq.negative) == 2 * len(bbq.positive) == 12  # one correct vs two wrong answers per item
    tox = build_contrast("toxigen", data_dir, limit=40, style="reference")
    ref = build_contrast("toxigen", data_dir, limit=40, style="reference", reference_polarity=True)
    assert tox.positive == ref.negative and tox.negative == ref.positive  # the reference's polarity, as an option
    assert not any(t.startswith("Is the following statement") for t in tox.positive)  # the statements themselves
    capped = build_contrast("truthfulqa_mc2", data_dir, limit=20, style="reference", max_pairs=7)
    assert len(capped.positive) == len(capped.negative) == 7
    with pytest.raises(ts.SteeringError, match="style must be"):
        build_contrast("bbq", data_dir, limit=3, style="paper")


def test_group_split_keeps_each_group_on_one_side():
    gp = [q for q in range(20) for _ in range(2)]  # 2 true answers per question
    gn = [q for q in range(20) for _ in range(3)]
    ptr, pva, ntr, nva = group_split(gp, gn, 0.2, seed=1)
    val = {gp[i] for i in pva.tolist()} | {gn[i] for i in nva.tolist()}
    train = {gp[i] for i in ptr.tolist()} | {gn[i] for i in ntr.tolist()}
    assert val and train and not val & train
    assert len(pva) + len(nva) >= 0.2 * 100
    assert torch.equal(group_split(gp, gn, 0.2, seed=1)[1], pva)


def test_iti_probes_validate_on_held_out_questions():
    g = torch.Generator().manual_seed(0)
    names = ["blocks.0.attn.hook_z", "blocks.1.attn.hook_z"]
    pos = {n: torch.randn(40, 4, 8, generator=g) for n in names}
    neg = {n: torch.randn(60, 4, 8, generator=g) - 0.5 for n in names}
    groups = ([q for q in range(20) for _ in range(2)], [q for q in range(20) for _ in range(3)])
    iti = Iti.from_activations(pos, neg, k=2, groups=groups)
    assert iti.report.probe_accuracy.shape == (2, 4)
    with pytest.raises(ts.SteeringError, match="both classes on both sides"):
        Iti.from_activations(pos, neg, k=2, groups=([0] * 40, [0] * 60))


def test_mat_steer_edit_site_applies_resid_features_at_hook_z(tiny):
    pairs = ts.ContrastSet("x", ("good day", "nice cat", "kind one", "warm"), ("bad day", "mean cat", "cruel", "cold"))
    f = ts.fit("mat-steer", tiny, [pairs], ts.FitOptions(layer=1, progress=False, extra={"epochs": 2, "edit_site": "z"}))
    assert f.hook_names() == ["blocks.1.attn.hook_z"] and f.fit_config["read_hook"] == "blocks.1.hook_resid_pre"
    assert f.feature_shape == (4, 16)
    base = tiny("hello there")
    with ts.steer(tiny, f.hooks(tiny, strength=4.0)):
        assert not torch.allclose(tiny("hello there"), base)
    with pytest.raises(ts.ShapeError, match="must flatten to the fitted width 64"):
        f.at("blocks.1.mlp.hook_post", (128,))


def test_paired_bootstrap_and_mcnemar():
    a = [1.0] * 30 + [0.0] * 70
    b = [1.0] * 30 + [1.0] * 20 + [0.0] * 50  # b right on 20 more items, never worse
    p = paired(a, b, "acc")
    assert p.diff == pytest.approx(0.2) and p.low > 0 and p.b_only == 20 and p.a_only == 0
    assert p.mcnemar_p == pytest.approx(2 * 0.5**20)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(1, 9) == pytest.approx(2 * (1 + 10) / 2**10)
    cont = paired([0.2, 0.4, 0.6], [0.3, 0.5, 0.7], "mc2")
    assert cont.diff == pytest.approx(0.1) and cont.mcnemar_p is None and math.isclose(cont.low, 0.1, abs_tol=1e-9)
    with pytest.raises(ts.SteeringError, match="same non-empty items"):
        paired([1.0], [1.0, 0.0])


@pytest.mark.data
def test_results_compare_on_the_same_items(tiny, data_dir):
    from tl_steer.eval.run import evaluate

    v = ts.mean_diff(tiny, ts.ContrastSet("x", ("yes", "sure"), ("no", "never")), layer=1)
    base = evaluate(tiny, "toxigen", [], split="val", limit=12, data_dir=data_dir, progress=False)
    steered = evaluate(tiny, "toxigen", v.hooks(tiny, strength=8.0), label="caa", split="val", limit=12,
                       data_dir=data_dir, progress=False)
    cmp = base.compare(steered)
    assert cmp.n == 12 and cmp.metric == "acc" and cmp.mcnemar_p is not None
    assert cmp.diff == pytest.approx(steered.value - base.value)
    assert base.config["bos"] is tiny.cfg.default_prepend_bos and len(base.item_ids) == 12  # the model's own rule, recorded
    other = evaluate(tiny, "toxigen", [], split="val", limit=10, data_dir=data_dir, progress=False)
    with pytest.raises(ts.SteeringError, match="same items"):
        base.compare(other)


def test_auc_and_gate_selectivity_on_planted_gates(tiny):
    from tl_steer.eval.gates import auc, gate_selectivity
    from tl_steer.methods.mat_steer import MatSteer

    assert auc([2.0, 3.0], [0.0, 1.0]) == 1.0 and auc([0.0], [1.0]) == 0.0 and auc([1.0], [1.0]) == 0.5
    name = "blocks.1.hook_resid_pre"
    texts = ts.ContrastSet("x", ("good day", "nice cat", "kind one"), ("bad day", "mean cat", "cruel one"))
    acts = ts.collect(tiny, list(texts.positive + texts.negative), name, progress=False)[name]
    direction = acts[3:].mean(0) - acts[:3].mean(0)  # points at the negative texts
    w = torch.stack([direction, -direction]) * 50
    m = MatSteer(name, torch.zeros(2, 64), w, torch.zeros(2), ("neg-gate", "pos-gate"))
    rows = {(r.attribute, r.eval_set): r for r in gate_selectivity(tiny, m, {"mood": texts})}
    neg, pos = rows[("neg-gate", "mood")], rows[("pos-gate", "mood")]
    assert neg.auc >= 0.75 and neg.auc + pos.auc == pytest.approx(1.0)  # opposite gates rank the texts oppositely
    assert neg.mean_negative > neg.mean_positive and pos.mean_negative < pos.mean_positive
    assert neg.n_positive == neg.n_negative == 3


@pytest.mark.data
def test_evaluate_label_is_a_name_and_prompting_the_only_switch(tiny, data_dir):
    from tl_steer.eval.run import evaluate

    kw = dict(split="val", limit=4, data_dir=data_dir, progress=False)
    base = evaluate(tiny, "copa", [], **kw)
    named = evaluate(tiny, "copa", [], label="my-run", **kw)  # a label changes nothing but the name
    assert (base.method, named.method) == ("none", "my-run") and named.per_item == base.per_item
    prompted = evaluate(tiny, "copa", [], prompting=True, **kw)
    assert prompted.method == "prompting" and prompted.config["prompting"] is True
    assert base.config["prompting"] is False  # (tests/eval/test_eval_cli.py checks that the prompt changes)
    labelled = evaluate(tiny, "copa", [], label="instructed", prompting=True, **kw)
    assert labelled.method == "instructed" and labelled.per_item == prompted.per_item
    former = evaluate(tiny, "copa", [], method="prompting", **kw)  # the former spelling keeps its meaning
    assert former.method == "prompting" and former.per_item == prompted.per_item
    with pytest.raises(ts.SteeringError, match="not both"):
        evaluate(tiny, "copa", [], method="caa", label="x", **kw)
    with pytest.raises(ts.SteeringError, match="non-empty string"):
        evaluate(tiny, "copa", [], label=" ", **kw)
