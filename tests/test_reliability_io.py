"""Issue #19, data loss and artefacts: save touches only its own files, concurrent saves, per-row strengths,
interrupted saves, manifest fingerprints (architecture, bad types, strict=False), legacy field names."""

from __future__ import annotations

import json
import multiprocessing as mp
import threading
import warnings

import pytest
import torch

import tl_steer as ts
from tl_steer import io
from tl_steer.methods.iti import Iti
from tl_steer.methods.mat_steer import MatSteer

R = "blocks.0.hook_resid_pre"


def _vec(seed: int = 0, d: int = 64) -> ts.SteeringVectors:
    return ts.SteeringVectors({R: torch.randn(d, generator=torch.Generator().manual_seed(seed))}, 1.5, "caa")


def test_save_keeps_the_users_own_tensors_files(tmp_path):
    """A folder with no manifest but the user's ``tensors*.safetensors``: save adds its files and removes none."""
    mine = [tmp_path / "tensors.safetensors", tmp_path / "tensors-mine.safetensors", tmp_path / "tensors_2.safetensors"]
    for i, f in enumerate(mine):
        f.write_bytes(b"user data %d" % i)
    io.save(_vec(), tmp_path)
    assert all(f.read_bytes() == b"user data %d" % i for i, f in enumerate(mine))
    # overwriting removes only the tensors file the previous manifest named
    first = json.loads((tmp_path / io.MANIFEST).read_text())["tensors_file"]
    io.save(_vec(1), tmp_path, overwrite=True)
    assert not (tmp_path / first).exists()
    assert all(f.read_bytes() == b"user data %d" % i for i, f in enumerate(mine))
    assert torch.equal(io.load(tmp_path).vectors[R], _vec(1).vectors[R])


def test_interleaved_overwrite_saves_leave_a_loadable_artefact(tmp_path):
    """Two writers overwriting one path (two `tl-steer fit --force`): the artefact always loads afterwards and holds
    one writer's complete method; no unreferenced tensors file is left."""
    target = tmp_path / "art"
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        try:
            for _ in range(15):
                io.save(_vec(seed), target, overwrite=True)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(s,)) for s in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    got = io.load(target).vectors[R]
    assert any(torch.equal(got, _vec(s).vectors[R]) for s in (1, 2, 3))
    assert len(list(target.glob("tensors*.safetensors"))) == 1
    assert not list(target.glob(".*.tmp"))


def test_the_issues_interleaving_cannot_break_the_artefact(tmp_path, monkeypatch):
    """The exact interleaving of two overwrite-saves that broke an artefact before: A commits its manifest, B commits
    its manifest, then A cleans up (and used to delete B's tensors, which B's manifest names). The test forces that
    order when saves can interleave; with the folder lock B cannot commit inside A's save, A's wait times out, and
    the artefact loads."""
    target = tmp_path / "art"
    io.save(_vec(0), target)
    b_committed = threading.Event()
    real_write = io.atomic_write_text

    def write(path, text):
        out = real_write(path, text)
        if threading.current_thread().name == "A":
            b_committed.wait(timeout=2.0)  # old code: B commits here, then A's clean-up deletes B's tensors
        else:
            b_committed.set()
        return out

    monkeypatch.setattr(io, "atomic_write_text", write)
    a = threading.Thread(target=lambda: io.save(_vec(1), target, overwrite=True), name="A")
    b = threading.Thread(target=lambda: io.save(_vec(2), target, overwrite=True), name="B")
    a.start()
    import time

    time.sleep(0.3)  # A is inside its save (waiting after its commit) before B starts
    b.start()
    a.join(10)
    b.join(10)
    got = io.load(target).vectors[R]
    assert any(torch.equal(got, _vec(s).vectors[R]) for s in (1, 2))
    assert len(list(target.glob("tensors*.safetensors"))) == 1


def _proc_writer(path: str, seed: int, n: int) -> None:
    import torch as _t

    from tl_steer import io as _io
    from tl_steer.methods.vector import SteeringVectors

    for _ in range(n):
        _io.save(SteeringVectors({R: _t.randn(64, generator=_t.Generator().manual_seed(seed))}, 1.5, "caa"), path,
                 overwrite=True)


def test_interleaved_saves_from_two_processes(tmp_path):
    target = tmp_path / "art"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_proc_writer, args=(str(target), s, 10)) for s in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    got = io.load(target).vectors[R]
    assert any(torch.equal(got, _vec(s).vectors[R]) for s in (1, 2))
    assert len(list(target.glob("tensors*.safetensors"))) == 1


def test_per_row_strengths_are_refused_by_save_for_every_method(tmp_path, tiny):
    iti = Iti.from_contrast(tiny, ts.ContrastSet("x", ("good a", "kind b", "nice c", "fine d"),
                                                 ("bad a", "cruel b", "mean c", "awful d")), k=2)
    for m in (iti.with_strength(torch.tensor([1.0, 2.0])), _vec().with_strength([1.0, 2.0])):
        with pytest.raises(ts.SteeringError, match="per-row strengths"):
            io.save(m, tmp_path / type(m).__name__)
        assert not (tmp_path / type(m).__name__ / io.MANIFEST).exists()


def test_an_interrupted_save_leaves_no_temporary_file(tmp_path, monkeypatch):
    import safetensors.torch as st

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(st, "save_file", boom)
    with pytest.raises(KeyboardInterrupt):
        io.save(_vec(), tmp_path)
    assert not list(tmp_path.glob(".*")) and not list(tmp_path.glob("*"))


def test_stale_temporaries_of_a_killed_save_are_removed_by_the_next_save(tmp_path):
    (tmp_path / ".tensors-abc123.tmp").write_bytes(b"half")
    (tmp_path / ".manifest.json-xyz.tmp").write_text("{")
    (tmp_path / ".my-own-hidden-file").write_text("keep")
    io.save(_vec(), tmp_path)
    assert not (tmp_path / ".tensors-abc123.tmp").exists() and not (tmp_path / ".manifest.json-xyz.tmp").exists()
    assert (tmp_path / ".my-own-hidden-file").read_text() == "keep"


def test_config_must_be_plain_json(tmp_path):
    class Odd(ts.SteeringVectors):
        def to_state(self):
            t, c = super().to_state()
            return t, {**c, "site_norms": {R: torch.tensor(1.0)}}

    with pytest.raises((ts.SteeringError, ts.ManifestError)):
        io.save(Odd({R: torch.ones(4)}, 1.0, "caa"), tmp_path)


# ------------------------------------------------------------------------------------------------ fingerprints
def _bridge(cfg_cls, model_cls, **kw):
    from transformer_lens.model_bridge import TransformerBridge

    from tl_steer.models import char_tokenizer

    tok = char_tokenizer()
    torch.manual_seed(0)
    m = model_cls(cfg_cls(vocab_size=len(tok), **kw)).eval()
    return TransformerBridge.boot_transformers("x", hf_model=m, tokenizer=tok, device="cpu")


SHAPES = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              max_position_embeddings=128)


def _family(name: str):
    import transformers as T

    return {"llama": (T.LlamaConfig, T.LlamaForCausalLM), "mistral": (T.MistralConfig, T.MistralForCausalLM),
            "qwen3": (T.Qwen3Config, T.Qwen3ForCausalLM), "qwen2": (T.Qwen2Config, T.Qwen2ForCausalLM)}[name]


def test_fingerprint_tells_architectures_of_equal_shapes_apart(tmp_path):
    """Same seed, same shapes, other architecture: refused (before: equal fingerprints, loads accepted)."""
    bridges = {n: _bridge(*_family(n), **SHAPES) for n in ("llama", "mistral", "qwen3", "qwen2")}
    io.save(_vec(), tmp_path / "v", model=bridges["llama"])
    assert io.load(tmp_path / "v", model=bridges["llama"]).strength == 1.5
    for name in ("mistral", "qwen3", "qwen2"):
        with pytest.raises(ts.ManifestError, match="architecture|config_sha"):
            io.load(tmp_path / "v", model=bridges[name])


def test_fingerprint_tells_neox_parallel_residual_apart(tmp_path):
    import transformers as T

    kw = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4)
    par = _bridge(T.GPTNeoXConfig, T.GPTNeoXForCausalLM, use_parallel_residual=True, **kw)
    seq = _bridge(T.GPTNeoXConfig, T.GPTNeoXForCausalLM, use_parallel_residual=False, **kw)
    io.save(_vec(), tmp_path / "v", model=par)
    with pytest.raises(ts.ManifestError, match="config_sha"):
        io.load(tmp_path / "v", model=seq)


def test_fingerprint_of_the_same_model_matches_across_dtypes(tmp_path, tiny_hf):
    io.save(_vec(), tmp_path / "v", model=tiny_hf)
    fp = io.model_fingerprint(tiny_hf)
    assert fp["architecture"] == "llama" and fp["prepend_bos"] is True  # the char tokenizer adds BOS
    assert io.load(tmp_path / "v", model=tiny_hf).strength == 1.5


def test_bad_types_inside_the_fingerprint_are_manifest_errors(tmp_path, tiny):
    io.save(_vec(), tmp_path / "v", model=tiny)
    mf = tmp_path / "v" / io.MANIFEST
    doc = json.loads(mf.read_text())
    for bad in ({"embed_sample": "abc"}, {"embed_sample": [1, "x"]}, {"n_layers": [2]}, {"d_model": {"a": 1}}):
        mf.write_text(json.dumps({**doc, "model": {**doc["model"], **bad}}))
        with pytest.raises(ts.ManifestError, match="field 'model"):
            io.load(tmp_path / "v", model=tiny)
    mf.write_text(json.dumps({**doc, "model": ["not", "an", "object"]}))
    with pytest.raises(ts.ManifestError, match="'model'"):
        io.load(tmp_path / "v", model=tiny)


def test_strict_false_warns(tmp_path, tiny):
    from tl_steer.models import tiny_model

    io.save(_vec(), tmp_path / "v", model=tiny)
    other = tiny_model(seed=5)
    with pytest.warns(io.FingerprintWarning, match="fitted on another model"):
        assert io.load(tmp_path / "v", model=other, strict=False).strength == 1.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        io.load(tmp_path / "v", model=tiny, strict=False)  # same model: no warning


def test_a_missing_strength_names_the_current_field(tmp_path):
    io.save(_vec(), tmp_path / "v")
    mf = tmp_path / "v" / io.MANIFEST
    doc = json.loads(mf.read_text())
    del doc["config"]["strength"]
    mf.write_text(json.dumps(doc))
    with pytest.raises(ts.ManifestError, match="lacks 'strength'") as e:
        io.load(tmp_path / "v")
    assert "coef" not in str(e.value)


def test_opt_with_a_narrow_mlp_fits_and_steers_its_own_model(tmp_path):
    """OPT with ffn_dim != 4 * hidden: TL's cfg.d_mlp is 256 but hook_post is 96 wide. MAT-Steer on mlp_post must
    accept its own model (before: 'another model? Refit')."""
    import transformers as T

    b = _bridge(T.OPTConfig, T.OPTForCausalLM, hidden_size=64, ffn_dim=96, num_hidden_layers=2, num_attention_heads=4,
                word_embed_proj_dim=64)
    assert b.cfg.d_mlp == 256  # TL's config is wrong here
    from tl_steer.sites import feature_shape

    assert feature_shape(b, "mlp_post") == (96,)
    pairs = ts.ContrastSet("x", ("good day!", "kind word!", "nice cat!", "fine one!"), ("bad day?", "cruel word?",
                                                                                       "mean cat.", "awful one."))
    m = ts.fit("mat-steer", b, [pairs], ts.FitOptions(layer=1, site="mlp_post", progress=False, extra={"epochs": 2}))
    assert m.feature_shape == (96,)
    with ts.steer(b, m.hooks(b)):
        b("hello there")
    io.save(m, tmp_path / "m", model=b)
    assert io.load(tmp_path / "m", model=b).feature_shape == (96,)


def test_meta_device_tensors_are_refused():
    with pytest.raises(ts.SteeringError, match="meta device"):
        _vec().to("meta")
    with pytest.raises(ts.SteeringError, match="meta device"):
        MatSteer(R, torch.zeros(1, 8), torch.zeros(1, 8), torch.zeros(1), ("a",)).to("meta")
    with pytest.raises(ts.SteeringError, match="meta device"):
        _vec().with_strength(torch.ones(2, device="meta"))
