"""The steering-method protocol and registry: every registered method fits, applies, prints and saves the same way,
and no method is named outside its own modules and the registry."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
import torch

import tl_steer as ts
from tl_steer import registry
from tl_steer.core import Positions

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "tl_steer"
POS = ("I love this, it is great", "what a wonderful day", "happy and kind words", "a lovely gift", "so glad")
NEG = ("I hate this, it is awful", "what a terrible day", "angry and cruel words", "a nasty insult", "so sad")


@pytest.fixture(scope="module")
def fitted(tiny):
    sets = [ts.ContrastSet("mood", POS, NEG), ts.ContrastSet("tone", POS[::-1], NEG[::-1])]
    return ts.fit_many(registry.names(), tiny, sets, ts.FitOptions(layer=1, k=3, progress=False, extra={"epochs": 3}))


def test_every_method_follows_the_protocol(tiny, fitted, tmp_path):
    assert set(fitted) == set(registry.names()) and len(registry.names()) >= 5
    x = ["check every method", "hi"]
    for name, method in fitted.items():
        spec = registry.get(name)
        assert isinstance(method, ts.SteeringMethod), name
        assert isinstance(method, spec.cls) and registry.resolve(method.method) == name
        params = list(inspect.signature(method.hooks).parameters)
        assert params[:3] == ["model", "positions", "strength"], (name, params)  # the protocol; extras keyword-only use
        assert all(inspect.signature(method.hooks).parameters[p].default is not inspect.Parameter.empty
                   for p in params[3:]), (name, params)
        text = repr(method)
        assert len(text) < 300 and "tensor(" not in text and name in text and "strength=" in text, text
        assert spec.grid and spec.default_positions and spec.summary and spec.strength
        with ts.tracking(tiny):
            base = tiny.run_with_hooks(x, fwd_hooks=[], padding_side="left")
            zero = tiny.run_with_hooks(x, fwd_hooks=method.hooks(tiny, strength=0.0), padding_side="left")
            out = tiny.run_with_hooks(x, fwd_hooks=method.hooks(tiny, positions="all", strength=4.0),
                                      padding_side="left")
            again = tiny.run_with_hooks(x, fwd_hooks=method.with_strength(4.0).hooks(tiny, positions="all"),
                                        padding_side="left")
        if name != "mat-steer":  # MAT-Steer's norm rescale makes strength 0 a rescale-only edit (exactly 1)
            assert torch.equal(zero, base), name
        assert not torch.allclose(out, base), name
        torch.testing.assert_close(out, again)
        path = ts.save(method, tmp_path / name, model=tiny)
        back = ts.load_method(path, model=tiny, expect=name)
        assert type(back) is type(method) and back.method == method.method and back.strength == method.strength
        with ts.tracking(tiny):
            torch.testing.assert_close(
                tiny.run_with_hooks(x, fwd_hooks=back.hooks(tiny, strength=2.0), padding_side="left"),
                tiny.run_with_hooks(x, fwd_hooks=method.hooks(tiny, strength=2.0), padding_side="left"))


def test_strengths_are_finite_numbers(tiny, fitted):
    for method in fitted.values():
        for bad in (float("inf"), float("nan"), True):
            with pytest.raises(ts.SteeringError, match="finite number"):
                method.hooks(tiny, strength=bad)
            with pytest.raises(ts.SteeringError, match="finite number"):
                method.with_strength(bad)


def test_unknown_names_and_duplicate_registration():
    with pytest.raises(ts.SteeringError, match="registered: caa, pca"):
        registry.get("lora")
    spec = registry.get("caa")
    with pytest.raises(ts.SteeringError, match="already registered"):
        registry.register(registry.MethodSpec(**{**spec.__dict__, "name": "other", "aliases": ("caa",)}))


def test_registry_reads_only_what_each_method_needs(tiny):
    opts = ts.FitOptions(layer=1, progress=False)
    needs = {spec.name: spec.reads(tiny, opts) for spec in registry.specs()}
    assert needs["caa"] == ["blocks.1.hook_resid_pre"] == needs["mat-steer"] == needs["pca"]
    assert needs["sadi"] == needs["iti"] == [f"blocks.{i}.attn.hook_z" for i in range(tiny.cfg.n_layers)]


# ---------------------------------------------------------------- no method named outside its modules

def _own_files(spec: registry.MethodSpec) -> set[Path]:
    """A method's own modules: its methods/ module (where SPEC lives) and a functional/ module of the same name."""
    mod = Path(inspect.getfile(spec.reads)).resolve()
    return {mod, PKG / "functional" / mod.name}


def _identifiers_and_strings(path: Path) -> set[str]:
    """Every identifier, attribute, imported name and non-docstring string constant of a module (not comments)."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
        elif isinstance(node, ast.alias):
            out.update(node.name.split("."))
            if node.asname:
                out.add(node.asname)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.update(node.module.split("."))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            out.update(re.findall(r"[A-Za-z_][A-Za-z0-9_-]*", node.value))
    return out


def test_no_method_is_named_outside_its_own_modules_and_the_registry():
    registry_files = {PKG / "registry.py", PKG / "methods" / "__init__.py"}
    shared = {"SteeringVectors", "vector", "vectors"}  # the apply side several methods share
    offenders = []
    for spec in registry.specs():
        words = {spec.name, *spec.aliases, spec.name.replace("-", "_"), spec.cls.__name__,
                 Path(inspect.getfile(spec.reads)).stem} - shared
        for path in sorted(PKG.rglob("*.py")):
            if path.resolve() in _own_files(spec) or path in registry_files:
                continue
            hits = words & _identifiers_and_strings(path)
            if hits:
                offenders.append(f"{path.relative_to(ROOT)} names {sorted(hits)}")
    assert not offenders, "\n".join(offenders)


def test_adding_a_method_page_runs(tiny):
    """docs/adding-a-method.md walks through a new method; its code blocks run as written, in order."""
    text = (ROOT / "docs" / "adding-a-method.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 3
    env: dict = {"model": tiny}
    try:
        for block in blocks:
            exec(compile(block, "docs/adding-a-method.md", "exec"), env)  # noqa: S102 - the page's own code
        assert "mean-shift" in registry.names() and isinstance(env["fitted"], ts.SteeringMethod)
    finally:
        registry._REGISTRY.pop("mean-shift", None)
        for k in [k for k, v in registry._ALIASES.items() if v == "mean-shift"]:
            registry._ALIASES.pop(k)
    assert Positions.ALL.value == "all"


def test_relative_strength_is_a_fraction_of_the_site_norm(tiny, fitted, tmp_path):
    """A norm-relative strength: the same fraction means the same relative edit on models of any scale."""
    for name in ("caa", "pca", "iti"):
        m = fitted[name]
        rel = m.relative(0.1)
        vec = rel.vectors if name != "iti" else rel.vectors.vectors
        norms = m.site_norms if name != "iti" else m.vectors.site_norms
        expect = 0.1 * sum(norms[k] / float(v.norm()) for k, v in vec.items()) / len(vec)
        assert rel.strength == pytest.approx(expect, rel=1e-5) and rel.strength != m.strength
        assert set(norms) == set(vec) and all(n > 0 for n in norms.values())
        back = ts.load_method(ts.save(rel, tmp_path / name, model=tiny), model=tiny)
        assert back.relative(0.1).strength == pytest.approx(rel.strength)  # the norms are saved with it
    mat = fitted["mat-steer"].relative(0.2)
    theta = float(mat.theta.flatten(1).norm(dim=1).mean())
    assert mat.strength * theta == pytest.approx(0.2 * mat.fit_config["site_norm"], rel=1e-4)
    bigger = ts.SteeringVectors({"blocks.1.hook_resid_pre": torch.ones(64)}, site_norms={"blocks.1.hook_resid_pre": 800.0})
    assert bigger.relative(0.1).strength == pytest.approx(0.1 * 800.0 / 8.0)  # |v| = 8
    with pytest.raises(ts.SteeringError, match="site_norms"):
        ts.SteeringVectors({"blocks.1.hook_resid_pre": torch.ones(64)}).relative(0.1)


@pytest.mark.parametrize("positions", ["all", "last_prompt"])
def test_per_row_strengths_equal_one_run_per_strength(tiny, fitted, positions):
    """A (batch,) strength steers each row at its own strength: one batch of N copies == N runs, for every method."""
    strengths = [0.0, 0.5, 2.0, 4.0]
    x = ["steer each row at its own strength"] * len(strengths)
    for name, method in fitted.items():
        with ts.steer(tiny, method.hooks(tiny, positions=positions, strength=torch.tensor(strengths))):
            batched = tiny(x)
        for r, s in enumerate(strengths):
            with ts.steer(tiny, method.hooks(tiny, positions=positions, strength=s)):
                one = tiny(x[:1])
            torch.testing.assert_close(batched[r: r + 1], one, atol=1e-4, rtol=1e-4, msg=f"{name} strength {s}")
        with pytest.raises(ts.SteeringError, match="per-row strengths for a batch of 2 rows"), \
                ts.steer(tiny, method.hooks(tiny, positions=positions, strength=[1.0, 2.0, 3.0])):
            tiny(x[:2])
        with pytest.raises(ts.SteeringError, match="finite numbers"):
            method.hooks(tiny, strength=[1.0, float("nan")])


def test_fit_from_activations_is_the_one_path(tiny):
    """fit_many = read the activations once + fit_from_activations per method: the same fitted tensors; FitOptions
    holds only what a user sets (the context is read from the model and the sets)."""
    from tl_steer.registry import FitContext, fit_from_activations, read_activations

    sets = [ts.ContrastSet("mood", ("good day", "kind words", "a gift"), ("bad day", "cruel words", "an insult"))]
    opts = ts.FitOptions(layer=1, k=2, progress=False, extra={"epochs": 2})
    many = ts.fit_many(["caa", "sadi", "mat-steer"], tiny, sets, opts)
    needed = sorted({n for m in ("caa", "sadi", "mat-steer") for n in registry.get(m).reads(tiny, opts)})
    pos, neg = read_activations(tiny, sets, needed, opts)
    ctx = FitContext.of(tiny, sets)
    for name in ("caa", "sadi", "mat-steer"):
        own = opts if name == "mat-steer" else ts.FitOptions(layer=1, k=2, progress=False)  # epochs is MAT-Steer's
        one = fit_from_activations(name, tiny, pos, neg, own, ctx)
        a, b = one.to_state()[0], many[name].to_state()[0]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert not {"groups", "feature_shapes", "neuron_act"} & set(vars(opts))
    with pytest.raises(ts.SteeringError, match="belong to none"):
        fit_from_activations("caa", tiny, pos, neg, opts, ctx)
    with pytest.raises(ts.SteeringError, match="lack"):
        fit_from_activations("caa", tiny, {"mood": {}}, {"mood": {}}, ts.FitOptions(layer=1), ctx)


def test_pairing_is_what_the_builder_declares(tiny):
    """ContrastSet.paired is the builder's declaration, not a count: labelled texts split by from_labels are not
    pairs even when both sides have as many texts, and PCA (which needs pairs) refuses them."""
    from tl_steer.pairs import from_labels

    cs = from_labels("mood", ["good day", "bad day", "kind words", "cruel words"], [1, 0, 1, 0], desirable=1)
    assert len(cs.positive) == len(cs.negative) and not cs.paired
    assert ts.ContrastSet("m", ("a", "b"), ("c", "d")).paired  # undeclared: equal counts are taken as pairs
    assert ts.ContrastSet("m", ("a", "b"), ("c", "d"), pairing=True).paired
    with pytest.raises(ts.SteeringError, match="declared paired"):
        ts.ContrastSet("m", ("a", "b"), ("c",), pairing=True)
    with pytest.raises(ts.SteeringError, match="paired"):
        ts.fit("pca", tiny, [cs], ts.FitOptions(layer=1, progress=False))
    ts.fit("pca", tiny, [ts.ContrastSet("mood", cs.positive, cs.negative, pairing=True)], ts.FitOptions(layer=1, progress=False))
