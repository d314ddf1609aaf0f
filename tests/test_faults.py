"""Fault injection over the public entry points (issue #19): for arbitrary bad input, every entry point either
works or raises tl_steer's own error family (``SteeringError``), never a raw TypeError / RuntimeError / KeyError /
IndexError / AttributeError from deep inside, and never leaves a hook attached.

Each test draws ``max_examples`` inputs from a "junk" strategy (None, bools, huge and negative ints, NaN/inf floats,
strings, nested lists, dicts, tensors of every dtype and of the wrong shape, on the meta device). The number of cases
run is printed at the end of the session (``FAULT_CASES``)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tl_steer as ts
from tl_steer import io
from tl_steer.core import as_strengths, parse_position_set
from tl_steer.eval.scoring import score_items, score_items_shared
from tl_steer.eval.tasks import MCItem, check_loader_options, load_mmlu, load_truthfulqa
from tl_steer.fast import hf_steer
from tl_steer.methods.mat_steer import MatSteer
from tl_steer.methods.sadi import Sadi

FAULT_CASES: Counter[str] = Counter()
EXAMPLES = 40
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _tensors() -> st.SearchStrategy:
    dtypes = st.sampled_from([torch.float32, torch.float16, torch.int64, torch.bool, torch.complex64, torch.uint8])
    shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3)

    @st.composite
    def make(draw):
        shape, dtype = draw(shapes), draw(dtypes)
        if draw(st.booleans()) and draw(st.booleans()):
            return torch.empty(shape, dtype=dtype, device="meta")
        t = torch.zeros(shape, dtype=dtype)
        if dtype.is_floating_point and t.numel() and draw(st.booleans()):
            t.view(-1)[0] = draw(st.sampled_from([float("nan"), float("inf"), 1e30, -3.0]))
        return t

    return make()


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.binary(max_size=4),
)
junk = st.recursive(st.one_of(scalars, _tensors()), lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.tuples(inner, inner), st.dictionaries(st.text(max_size=4), inner, max_size=2)),
    max_leaves=5)

R = "blocks.1.hook_resid_pre"
POS = ("good kind text!", "a lovely day!", "happy words!", "so glad!")
NEG = ("bad cruel text?", "an awful day?", "angry words.", "so sad.")


def _ours_or_fine(fn, name: str) -> None:
    """Run ``fn``; only tl_steer's own error family may come out."""
    FAULT_CASES[name] += 1
    try:
        fn()
    except ts.SteeringError:
        pass


def _no_hooks_left(model) -> None:
    assert not any(hp._forward_hooks for hp in model.hook_dict.values())
    assert not model.original_model._forward_pre_hooks


@pytest.fixture(scope="module")
def vec(tiny_hf):
    return ts.mean_diff(tiny_hf, ts.ContrastSet("x", POS, NEG), layer=1)


@pytest.fixture(scope="module")
def sadi(tiny_hf):
    return Sadi.from_contrast(tiny_hf, ts.ContrastSet("x", POS, NEG), site="z", k=3, strength=4.0)


@SETTINGS
@given(value=junk)
def test_strengths(tiny_hf, vec, value):
    _ours_or_fine(lambda: as_strengths(value), "as_strengths")
    _ours_or_fine(lambda: vec.with_strength(value), "with_strength")
    _ours_or_fine(lambda: vec.hooks(tiny_hf, strength=value), "hooks(strength=)")


@SETTINGS
@given(value=junk)
def test_positions(tiny_hf, vec, value):
    _ours_or_fine(lambda: parse_position_set(value), "parse_position_set")
    _ours_or_fine(lambda: vec.hooks(tiny_hf, positions=value), "hooks(positions=)")


@SETTINGS
@given(field=st.sampled_from(["layer", "site", "k", "read", "seed", "read_batch_size", "prepend_bos", "extra"]), value=junk)
def test_fit_options(field, value):
    _ours_or_fine(lambda: ts.FitOptions(**{field: value}), "FitOptions")


@SETTINGS
@given(kw=st.dictionaries(st.sampled_from(["epochs", "batch_size", "lr", "lambdas", "kernel", "sigma", "init",
                                           "val_fraction", "patience", "seed", "preset", "steps_per_epoch"]),
                          junk, min_size=1, max_size=2))
def test_mat_steer_fit(kw):
    g = torch.Generator().manual_seed(0)
    p, n = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g) + 1

    def call():
        MatSteer.fit({"a": p}, {"a": n}, R, progress=False, **{**kw, "epochs": kw.get("epochs", 1)})

    _ours_or_fine(call, "MatSteer.fit")


@SETTINGS
@given(side=junk)
def test_mat_steer_fit_activations(side):
    g = torch.Generator().manual_seed(0)
    n = torch.randn(6, 8, generator=g)
    _ours_or_fine(lambda: MatSteer.fit({"a": side}, {"a": n}, R, epochs=1, progress=False), "MatSteer.fit(data)")
    _ours_or_fine(lambda: MatSteer.fit(side, {"a": n}, R, epochs=1, progress=False), "MatSteer.fit(dict)")


@SETTINGS
@given(clean=junk)
def test_sadi_reference_clean(tiny_hf, sadi, clean):
    _ours_or_fine(lambda: sadi.hooks(tiny_hf, mode="reference", clean=clean), "Sadi.hooks(clean=)")


@SETTINGS
@given(texts=junk, names=junk, kw=st.dictionaries(st.sampled_from(["read", "batch_size", "prepend_bos", "dtype"]), junk,
                                                  max_size=2))
def test_collect(tiny_hf, texts, names, kw):
    _ours_or_fine(lambda: ts.collect(tiny_hf, texts, names, progress=False, **kw), "collect")
    _ours_or_fine(lambda: ts.collect(tiny_hf, ["hello"], R, progress=False, **kw), "collect(kw)")
    _no_hooks_left(tiny_hf)


@SETTINGS
@given(hooks=junk)
def test_steer(tiny_hf, hooks):
    def call():
        with ts.steer(tiny_hf, hooks):
            tiny_hf("hi")

    _ours_or_fine(call, "steer")
    _no_hooks_left(tiny_hf)


@SETTINGS
@given(hooks=junk, name=st.sampled_from([R, "blocks.9.hook_resid_pre", "hook_embed", "blocks.0.attn.hook_z", "x"]))
def test_hf_steer(vec, hooks, name):
    from tl_steer.models import tiny_hf_model

    bridge, hf = _twin()

    def call():
        with hf_steer(bridge, hf, hooks, [(name, lambda a, hook: a)]):
            hf(torch.tensor([[1, 2, 3]]))

    _ours_or_fine(call, "hf_steer")
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in hf.modules())
    del tiny_hf_model


_TWIN: list = []


def _twin():
    if not _TWIN:
        from tl_steer.models import tiny_hf_model

        _TWIN.extend(tiny_hf_model(with_hf=True))
    return _TWIN[0], _TWIN[1]


@SETTINGS
@given(batch_size=junk)
def test_scorers(tiny_hf, batch_size):
    items = [MCItem("Q: Is it?\nA:", (" Yes", " No"), (1, 0))]
    _ours_or_fine(lambda: score_items(tiny_hf, items, [], batch_size=batch_size), "score_items")
    _ours_or_fine(lambda: score_items_shared(tiny_hf, items, [], batch_size=batch_size), "score_items_shared")


@SETTINGS
@given(field=st.sampled_from(["format_version", "method", "state", "hook_names", "config", "model", "tensors_file",
                              "tensors_sha256", "extra", "tl_steer_version"]), value=junk)
def test_load_a_damaged_manifest(tiny, tmp_path_factory, field, value):
    path = tmp_path_factory.mktemp("m")
    io.save(ts.SteeringVectors({"blocks.0.hook_resid_pre": torch.ones(64)}, 1.0, "caa"), path, model=tiny)
    doc = json.loads((path / io.MANIFEST).read_text())
    try:
        doc[field] = value
        (path / io.MANIFEST).write_text(json.dumps(doc, default=str))
    except (TypeError, ValueError):
        return
    _ours_or_fine(lambda: io.load(path, model=tiny), "io.load(manifest)")


@SETTINGS
@given(key=st.sampled_from(["strength", "hook_names", "site_norms", "method"]), value=junk)
def test_load_a_damaged_config(tiny, tmp_path_factory, key, value):
    path = tmp_path_factory.mktemp("c")
    io.save(ts.SteeringVectors({"blocks.0.hook_resid_pre": torch.ones(64)}, 1.0, "caa"), path, model=tiny)
    doc = json.loads((path / io.MANIFEST).read_text())
    try:
        doc["config"][key] = value
        (path / io.MANIFEST).write_text(json.dumps(doc, default=str))
    except (TypeError, ValueError):
        return
    _ours_or_fine(lambda: io.load(path, model=tiny), "io.load(config)")


@SETTINGS
@given(kw=st.dictionaries(st.sampled_from(["device", "dtype", "prepend_bos", "gguf_file"]), junk, min_size=1, max_size=2),
       name=st.one_of(st.sampled_from(["./nope.gguf", "/no/such", "x.gguf", ""]), st.text(max_size=6)))
def test_models_load(name, kw):
    from tl_steer import models

    if "device" not in kw:
        kw["device"] = "cpu"
    if not kw.get("dtype") and "dtype" in kw:
        kw["dtype"] = None
    # a plain hub id would try the network: only the argument checks and local paths are exercised here
    if not str(name).startswith((".", "/")) and not str(name).endswith(".gguf"):
        name = "./" + str(name) + ".gguf"
    _ours_or_fine(lambda: models.load(name, **kw), "models.load")


@SETTINGS
@given(options=st.dictionaries(st.sampled_from(["shots", "format", "primer", "max_aliases", "other"]), junk, max_size=2))
def test_task_options(options):
    _ours_or_fine(lambda: check_loader_options("mmlu", load_mmlu, options), "check_loader_options")
    _ours_or_fine(lambda: check_loader_options("truthfulqa_mc2", load_truthfulqa, options), "check_loader_options")


def test_zz_report_fault_case_count(capsys):
    """Print how many fault cases ran (the number the issue's note reports)."""
    total = sum(FAULT_CASES.values())
    with capsys.disabled():
        print(f"\n[faults] {total} fault cases over {len(FAULT_CASES)} entry points: {dict(FAULT_CASES)}")
    assert total == 0 or len(FAULT_CASES) >= 10
