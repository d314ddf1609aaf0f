"""``tl_steer.exporting``: a fixed edit baked into a standard Hugging Face checkpoint (plain ``transformers`` loads it and
gives the steered bridge's logits and greedy tokens) or written as a llama.cpp control vector; everything else
refused with its reason; nothing the user owns overwritten."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tl_steer as ts
from tl_steer import exporting as E
from tl_steer import registry
from tl_steer.methods.vector import SteeringVectors
from tl_steer.models import tiny_arch_configs, tiny_arch_model, tiny_hf_model

POS = ("I love this, it is great", "what a wonderful day", "happy and kind words", "a lovely gift", "so glad")
NEG = ("I hate this, it is awful", "what a terrible day", "angry and cruel words", "a nasty insult", "so sad")

#: which additive sites each family's stock config can carry, read off transformers' modelling code (which
#: projections have a bias or a flag for one; which families normalise block outputs; BLOOM's in-module residual)
RESID, HEADS, ATTN_OUT, MLP_OUT = "resid", "z", "attn_out", "mlp_out"
EXPORTABLE = {
    "llama": {RESID, HEADS, ATTN_OUT, MLP_OUT}, "mistral": set(), "qwen2": set(), "qwen3": {HEADS, ATTN_OUT},
    "phi3": set(), "gemma": {HEADS, ATTN_OUT}, "gemma2": {HEADS}, "gemma3_text": {HEADS},
    "gpt2": {RESID, HEADS, ATTN_OUT, MLP_OUT}, "gpt_neox": {RESID, HEADS, ATTN_OUT, MLP_OUT},
    "opt": {RESID, HEADS, ATTN_OUT, MLP_OUT}, "falcon": {RESID, HEADS, ATTN_OUT, MLP_OUT},
    "gptj": {RESID, MLP_OUT}, "bloom": {RESID, HEADS},
}


def _edits(bridge, gen):
    d, h, dh = bridge.cfg.d_model, bridge.cfg.n_heads, bridge.cfg.d_head
    return {
        RESID: {"blocks.1.hook_resid_pre": torch.randn(d, generator=gen),
                "blocks.1.hook_resid_post": torch.randn(d, generator=gen)},
        HEADS: {"blocks.1.attn.hook_z": torch.randn(h, dh, generator=gen)},
        ATTN_OUT: {"blocks.0.hook_attn_out": torch.randn(d, generator=gen)},
        MLP_OUT: {"blocks.1.hook_mlp_out": torch.randn(d, generator=gen)},
    }


def _check(bridge, hf, method, tmp_path, name="x"):
    """Export, then: the reloaded checkpoint matches the steered bridge; the unedited twin does not (the edit is
    real)."""
    from transformers import AutoModelForCausalLM

    out = E.export(method, bridge, tmp_path / name, hf_model=hf)
    loaded = AutoModelForCausalLM.from_pretrained(out).eval()
    diff = E.max_logit_diff(bridge, method, loaded, bridge.tokenizer)
    control = E.max_logit_diff(bridge, method, hf, bridge.tokenizer)
    assert diff < 1e-4, diff
    assert control > 100 * max(diff, 1e-6), (diff, control)
    return out, loaded


@pytest.mark.parametrize("model_type", sorted(tiny_arch_configs()))
def test_every_family_exports_what_its_config_can_carry_and_refuses_the_rest(model_type, tmp_path):
    bridge, hf = tiny_arch_model(model_type)
    gen = torch.Generator().manual_seed(0)
    edits = _edits(bridge, gen)
    want = EXPORTABLE[model_type]
    # the "blocks.0.hook_resid_pre" edit (the embeddings) is exportable everywhere
    vectors = {"blocks.0.hook_resid_pre": torch.randn(bridge.cfg.d_model, generator=gen)}
    for kind in want:
        vectors.update(edits[kind])
    out, loaded = _check(bridge, hf, SteeringVectors(vectors, 2.0, "caa"), tmp_path)
    manifest = json.loads((out / E.MANIFEST).read_text())
    assert set(manifest["hooks"]) == set(vectors) and manifest["max_logit_diff"] < 1e-4
    for kind in {RESID, HEADS, ATTN_OUT, MLP_OUT} - want:
        for hook, v in edits[kind].items():
            with pytest.raises(ts.SteeringError, match=model_type if model_type != "bloom" else "BLOOM") as e:
                E.export(SteeringVectors({hook: v}, 2.0, "caa"), bridge, tmp_path / f"no-{kind}", hf_model=hf)
            assert "hf_steer" in str(e.value) or "bridge" in str(e.value)
            assert not (tmp_path / f"no-{kind}").exists()


@pytest.fixture(scope="module")
def fitted():
    bridge, hf = tiny_hf_model(with_hf=True)
    sets = [ts.ContrastSet("mood", POS, NEG), ts.ContrastSet("tone", POS[::-1], NEG[::-1])]
    opts = ts.FitOptions(layer=1, k=3, progress=False, extra={"epochs": 3})
    methods = ts.fit_many(registry.names(), bridge, sets, opts)
    methods["sadi:mlp_post"] = ts.fit("sadi", bridge, sets, ts.FitOptions(site="mlp_post", k=5, progress=False))
    methods["caa:resid_post"] = ts.fit("caa", bridge, sets, ts.FitOptions(layer=0, site="resid_post", progress=False))
    return bridge, hf, methods


def test_every_registered_method_exports_or_says_why(fitted, tmp_path):
    bridge, hf, methods = fitted
    seen = {}
    for name, m in methods.items():
        m = m.with_strength(6.0 if name.startswith("sadi") else 3.0)
        if name.startswith("mat"):
            with pytest.raises(ts.SteeringError, match="depends on the input"):
                E.export(m, bridge, tmp_path / name, hf_model=hf)
            seen[name] = "refused"
            continue
        if name.startswith("sadi"):  # its paper's scope is the last prompt token: refused unless asked for "all"
            with pytest.raises(ts.ScopeError, match="positions='all'"):
                E.export(m, bridge, tmp_path / name, hf_model=hf)
            with pytest.raises(ts.ScopeError, match="every position"):
                E.export(m, bridge, tmp_path / name, hf_model=hf, positions="last_prompt")
            out = E.export(m, bridge, tmp_path / name, hf_model=hf, positions="all")
        else:
            out = E.export(m, bridge, tmp_path / name, hf_model=hf)
        seen[name] = json.loads((out / E.MANIFEST).read_text())["max_logit_diff"]
        assert seen[name] < 1e-4, (name, seen[name])
    assert {"caa", "pca", "iti", "sadi", "mat-steer", "sadi:mlp_post"} <= set(seen), seen


def test_greedy_tokens_match_the_steered_bridge(fitted, tmp_path):
    from transformers import AutoModelForCausalLM

    bridge, hf, methods = fitted
    for name in ("caa", "pca", "iti", "sadi", "sadi:mlp_post"):
        m = methods[name].with_strength(6.0 if name.startswith("sadi") else 3.0)
        out = E.export(m, bridge, tmp_path / name.replace(":", "_"), hf_model=hf, positions="all")
        loaded = AutoModelForCausalLM.from_pretrained(out).eval()
        ids = bridge.tokenizer("the cat sat on", return_tensors="pt").input_ids
        with ts.steer(bridge, m.hooks(bridge, positions="all")):
            want = bridge.generate(ids, max_new_tokens=12, do_sample=False, verbose=False)
        got = loaded.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=0)
        plain = hf.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=0)
        assert got[0].tolist() == want[0].tolist(), name
        assert plain[0].tolist() != want[0].tolist(), f"{name}: steering changed nothing; the test shows nothing"


LOAD_WITHOUT_TL_STEER = r"""
import sys, torch
from transformers import AutoModelForCausalLM
path, ids = sys.argv[1], [int(x) for x in sys.argv[2].split(",")]
m = AutoModelForCausalLM.from_pretrained(path).eval()
with torch.no_grad():
    logits = m(input_ids=torch.tensor([ids])).logits
assert not any(k.startswith("tl_steer") for k in sys.modules), "tl_steer was imported"
torch.save(logits, sys.argv[3])
"""


def _plain_logits(folder: Path, ids: list[int], tmp_path: Path) -> torch.Tensor:
    out = tmp_path / "logits.pt"
    subprocess.run([sys.executable, "-c", LOAD_WITHOUT_TL_STEER, str(folder), ",".join(map(str, ids)), str(out)],
                   check=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    return torch.load(out)


def test_a_process_without_tl_steer_loads_it(fitted, tmp_path):
    bridge, hf, methods = fitted
    m = methods["caa"].with_strength(3.0)
    out = E.export(m, bridge, tmp_path / "caa", hf_model=hf)
    ids = bridge.tokenizer("a lovely plain process", return_tensors="pt").input_ids
    with ts.steer(bridge, m.hooks(bridge, positions="all")):
        want = bridge(ids).float()
    got = _plain_logits(out, ids[0].tolist(), tmp_path)
    assert (got - want).abs().max() < 1e-4
    config = json.loads((out / "config.json").read_text())
    stock = hf.config.to_dict()
    # save_pretrained fills "architectures" in any checkpoint; the dtype is spelled two ways across versions
    changed = {k for k in config if k in stock and config[k] != stock[k]
               and k not in ("dtype", "torch_dtype", "architectures")}
    assert changed == {"mlp_bias"}, changed  # the stock config plus the documented flag


def test_nothing_the_user_owns_is_overwritten(fitted, tmp_path):
    bridge, hf, methods = fitted
    m = methods["caa"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(ts.SteeringError, match="exists"):
            E.export(m, bridge, mine, hf_model=hf, overwrite=overwrite)
    assert (mine / "notes.txt").read_text() == "keep me" and len(list(mine.iterdir())) == 1
    first = E.export(m, bridge, tmp_path / "exp", hf_model=hf)
    with pytest.raises(ts.SteeringError, match="overwrite=True"):
        E.export(m.with_strength(2.0), bridge, first, hf_model=hf)
    assert json.loads((first / E.MANIFEST).read_text())["strength"] == m.strength
    E.export(m.with_strength(2.0), bridge, first, hf_model=hf, overwrite=True)
    assert json.loads((first / E.MANIFEST).read_text())["strength"] == 2.0
    # a failed check leaves nothing behind (no folder, no temporary files)
    with pytest.raises(ts.SteeringError, match="differs from the steered bridge"):
        E.export(m, bridge, tmp_path / "bad", hf_model=hf, tolerance=-1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp", "mine"]


def test_clear_errors(fitted, tmp_path):
    bridge, hf, methods = fitted
    with pytest.raises(ts.SteeringError, match="hf_model="):  # a hand-booted bridge: its HF twin is unknown
        E.export(methods["caa"], bridge, tmp_path / "x")
    with pytest.raises(ts.SteeringError, match="unknown export format"):
        E.export(methods["caa"], bridge, tmp_path / "x", format="onnx")
    with pytest.raises(ts.SteeringError, match="affine"):
        E.export(object(), bridge, tmp_path / "x", hf_model=hf, positions="all")


# --- llama.cpp control vectors -----------------------------------------------------------------------------------


def test_control_vector_round_trip_and_layer_mapping(tmp_path):
    import gguf

    bridge = tiny_hf_model(n_layers=4)
    d = bridge.cfg.d_model
    g = torch.Generator().manual_seed(1)
    v2, v3, v1 = (torch.randn(d, generator=g) for _ in range(3))
    # blocks.2.hook_resid_pre is layer 1's output: llama.cpp's direction.1; resid_post 3 is the last layer's output
    m = SteeringVectors({"blocks.2.hook_resid_pre": v1, "blocks.2.hook_resid_post": v2,
                         "blocks.3.hook_resid_post": v3}, 1.5, "caa")
    path = E.export(m, bridge, tmp_path / "cv.gguf", format="llama.cpp")
    reader = gguf.GGUFReader(str(path))
    assert sorted(t.name for t in reader.tensors) == ["direction.1", "direction.2", "direction.3"]
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 and len(t.shape) == 1 for t in reader.tensors)
    vectors, meta = E.read_control_vector(path)
    assert meta["general.architecture"] == "controlvector" and meta["controlvector.model_hint"] == "llama"
    assert meta["controlvector.layer_count"] == 3
    torch.testing.assert_close(vectors["blocks.1.hook_resid_post"], 1.5 * v1)
    torch.testing.assert_close(vectors["blocks.3.hook_resid_post"], 1.5 * v3)
    # read back as TL hooks, it steers like the original: resid_post N == resid_pre N + 1
    back = SteeringVectors(vectors, 1.0, "caa")
    ids = bridge.to_tokens(["a test sentence"])
    with ts.steer(bridge, m.hooks(bridge)):
        want = bridge(ids)
    with ts.steer(bridge, back.hooks(bridge)):
        got = bridge(ids)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_control_vector_refusals(tmp_path):
    bridge = tiny_hf_model(n_layers=4)
    d, h, dh = bridge.cfg.d_model, bridge.cfg.n_heads, bridge.cfg.d_head
    for hook, v in (("blocks.1.hook_resid_pre", torch.ones(d)), ("blocks.0.hook_resid_post", torch.ones(d)),
                    ("blocks.1.attn.hook_z", torch.ones(h, dh))):
        with pytest.raises(ts.SteeringError, match="layers 1..3"):
            E.export(SteeringVectors({hook: v}, 1.0, "caa"), bridge, tmp_path / "x.gguf", format="llama.cpp")
    with pytest.raises(ts.SteeringError, match=".gguf"):
        E.export(SteeringVectors({"blocks.2.hook_resid_pre": torch.ones(d)}), bridge, tmp_path / "x", format="llama.cpp")
    assert list(tmp_path.iterdir()) == []
    # a .gguf that is not a control vector (a model, say) is never replaced, even with overwrite=True
    import gguf

    model_file = tmp_path / "model.gguf"
    w = gguf.GGUFWriter(str(model_file), "llama")
    w.add_tensor("token_embd.weight", torch.ones(4, 4).numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    before = model_file.read_bytes()
    vec = SteeringVectors({"blocks.2.hook_resid_pre": torch.ones(d)}, 1.0, "caa")
    with pytest.raises(ts.SteeringError, match="controlvector"):
        E.export(vec, bridge, model_file, format="llama.cpp", overwrite=True)
    assert model_file.read_bytes() == before
    first = E.export(vec, bridge, tmp_path / "cv.gguf", format="llama.cpp")
    E.export(vec.with_strength(2.0), bridge, first, format="llama.cpp", overwrite=True)  # an earlier export: replaced
    torch.testing.assert_close(E.read_control_vector(first)[0]["blocks.1.hook_resid_post"], 2.0 * torch.ones(d))


def test_control_vector_matches_repeng_format(tmp_path):
    """repeng writes the same format; its reader reads ours, layer for layer."""
    import importlib.util

    if importlib.util.find_spec("repeng") is None:
        pytest.skip("repeng is not installed (scripts/setup.sh installs it)")
    from tl_steer.interop import import_repeng

    repeng = import_repeng()
    bridge = tiny_hf_model(n_layers=4)
    v = torch.randn(bridge.cfg.d_model, generator=torch.Generator().manual_seed(2))
    path = E.export(SteeringVectors({"blocks.3.hook_resid_pre": v}, 2.0, "caa"), bridge, tmp_path / "cv.gguf",
                    format="llama.cpp")
    cv = repeng.ControlVector.import_gguf(str(path))
    assert cv.model_type == "llama" and set(cv.directions) == {2}
    torch.testing.assert_close(torch.from_numpy(cv.directions[2]).float(), 2.0 * v)


@pytest.mark.slow
def test_smollm2_checkpoint_loads_in_plain_transformers(smollm2, tmp_path):
    """On SmolLM2 the bridge itself differs from plain HF by ~7e-5 unsteered (fp32 order of operations, logits ~30).
    So: the checkpoint, loaded in a process without tl_steer, is within 1e-4 of the same hooks on the same plain HF
    model (``hf_steer``), within that bridge-vs-HF floor (+1e-4) of the steered bridge, and greedy-decodes the
    bridge's tokens."""
    from tl_steer.fast import hf_steer
    from tl_steer.models import load_hf

    hf, _ = load_hf("smollm2-135m-instruct")
    sets = [ts.ContrastSet("mood", POS, NEG)]
    results = {}
    # the call: no hf_model, the bridge's own source is reloaded as plain HF
    caa = ts.fit("caa", smollm2, sets, ts.FitOptions(layer=12, progress=False)).with_strength(4.0)
    plain = ts.export(caa, smollm2, tmp_path / "caa-own")
    assert json.loads((plain / E.MANIFEST).read_text())["max_logit_diff"] < 2e-4
    for name, opts in (("caa", ts.FitOptions(layer=12, progress=False)),
                       ("pca", ts.FitOptions(layer=12, progress=False)),
                       ("iti", ts.FitOptions(layer=12, k=8, progress=False)),
                       ("sadi", ts.FitOptions(layer=12, k=8, progress=False))):
        m = ts.fit(name, smollm2, sets, opts).with_strength(4.0)
        out = E.export(m, smollm2, tmp_path / name, hf_model=hf, positions="all")
        ids = smollm2.tokenizer("The weather today is", return_tensors="pt").input_ids
        with ts.steer(smollm2, m.hooks(smollm2, positions="all")):
            bridge = smollm2(ids).float()
            tokens = smollm2.generate(ids, max_new_tokens=8, do_sample=False, verbose=False)
        with hf_steer(smollm2, hf, m.hooks(smollm2, positions="all")), torch.no_grad():
            fast = hf(input_ids=ids).logits.float()
        got = _plain_logits(out, ids[0].tolist(), tmp_path)
        results[name] = (float((got - fast).abs().max()), float((got - bridge).abs().max()),
                         float((fast - bridge).abs().max()))
        assert results[name][0] < 1e-4, (name, results[name])
        assert results[name][1] <= results[name][2] + 1e-4, (name, results[name])
        from transformers import AutoModelForCausalLM

        loaded = AutoModelForCausalLM.from_pretrained(out).eval()
        assert loaded.generate(ids, max_new_tokens=8, do_sample=False)[0].tolist() == tokens[0].tolist(), name
        del loaded
