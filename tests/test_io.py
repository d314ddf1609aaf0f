"""Saving and loading: exact round trips, atomic saves, one manifest schema, dtype-aware model fingerprints."""

import json
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tl_steer import ManifestError, SteeringError, io
from tl_steer.methods.vector import SteeringVectors
from tl_steer.models import tiny_model


def _sv(model, strength=1.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SteeringVectors({"blocks.1.hook_resid_pre": torch.randn(model.cfg.d_model, generator=g)}, strength=strength)


def test_round_trip_exact(tiny, tmp_path):
    sv = _sv(tiny)
    io.save(sv, tmp_path / "v", model=tiny, note="hello")
    back = io.load(tmp_path / "v", model=tiny)
    assert back.strength == sv.strength and back.method == sv.method
    for k in sv.vectors:
        assert torch.equal(back.vectors[k], sv.vectors[k])
    manifest = io.read_manifest(tmp_path / "v")
    assert manifest["state"] == "steering_vectors" and manifest["extra"] == {"note": "hello"}
    assert manifest["model"]["d_model"] == tiny.cfg.d_model and manifest["model"]["dtype"] == "torch.float32"


def test_corrupt_files_fail_clearly(tiny, tmp_path):
    path = io.save(_sv(tiny), tmp_path / "v", model=tiny)
    tensors = path / io.read_manifest(path)["tensors_file"]
    data = bytearray(tensors.read_bytes())
    data[-1] ^= 0xFF
    tensors.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="checksum"):
        io.load(path)
    (path / io.MANIFEST).write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        io.load(path)
    (path / io.MANIFEST).write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ManifestError, match="not valid JSON"):
        io.load(path)
    with pytest.raises(ManifestError, match="manifest.json is missing"):
        io.load(tmp_path / "nothing")


def test_model_mismatch_and_wrong_method(tiny, tmp_path):
    path = io.save(_sv(tiny), tmp_path / "v", model=tiny)
    other = tiny_model(seed=1)
    with pytest.raises(ManifestError, match="another model"):
        io.load(path, model=other)
    assert io.load(path, model=other, strict=False).strength == 1.5
    with pytest.raises(ManifestError, match="holds a 'vectors' method, not 'mat-steer'"):
        io.load(path, expect="mat_steer")
    bigger = tiny_model(n_layers=1)
    with pytest.raises(ManifestError, match="n_layers"):
        io.load(path, model=bigger)


def test_same_model_in_bf16_is_not_another_model(tiny, tmp_path):
    """Fingerprints compare in fp32 with a dtype-aware tolerance (bf16 rounding moved the old checksum by 0.02)."""
    path = io.save(_sv(tiny), tmp_path / "v", model=tiny)
    half = tiny_model().to(torch.bfloat16)
    loaded = io.load(path, model=half)
    assert io.model_fingerprint(half)["dtype"] == "torch.bfloat16" and loaded.strength == 1.5
    with pytest.raises(ManifestError, match="another model"):
        io.load(path, model=tiny_model(seed=1).to(torch.bfloat16))


def test_unknown_format_version(tiny, tmp_path):
    path = io.save(_sv(tiny), tmp_path / "v", model=tiny)
    m = json.loads((path / io.MANIFEST).read_text())
    m["format_version"] = 99
    (path / io.MANIFEST).write_text(json.dumps(m))
    with pytest.raises(ManifestError, match="'format_version' is 99"):
        io.load(path)


def test_overwrite_needs_consent_and_read_only_dirs_fail_clearly(tiny, tmp_path):
    path = io.save(_sv(tiny), tmp_path / "v", model=tiny)
    with pytest.raises(SteeringError, match="overwrite=True"):
        io.save(_sv(tiny, strength=3.0), path, model=tiny)
    io.save(_sv(tiny, strength=3.0, seed=1), path, model=tiny, overwrite=True)
    assert io.load(path).strength == 3.0
    assert len(list(path.glob("*.safetensors"))) == 1, "the replaced artefact's tensors were not cleaned up"
    import tempfile

    def denied(*a, **k):  # what a read-only directory answers (root ignores permissions, so simulate it)
        raise PermissionError(13, "Permission denied")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "mkstemp", denied)
        with pytest.raises(SteeringError, match="cannot write to .* choose a writable directory"):
            io.save(_sv(tiny), tmp_path / "ro")


def test_non_finite_tensors_are_refused_at_save_and_load(tiny, tmp_path):
    sv = _sv(tiny)
    bad = SteeringVectors({k: v.clone() for k, v in sv.vectors.items()}, 1.0)
    next(iter(bad.vectors.values()))[5] = float("nan")
    with pytest.raises(SteeringError, match=r"'blocks.1.hook_resid_pre' .* nan at index \(5,\)"):
        io.save(bad, tmp_path / "bad")


class _Interrupt(BaseException):
    pass


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(step=st.integers(0, 2))  # save_file, replace(tensors), replace(manifest)
def test_an_interrupted_save_leaves_the_previous_artefact_loadable(tiny, tmp_path_factory, step):
    path = io.save(_sv(tiny, strength=1.5), tmp_path_factory.mktemp("a") / "v", model=tiny)
    calls = {"n": 0}
    real_replace, real_save = os.replace, __import__("safetensors.torch", fromlist=["save_file"]).save_file

    def flaky(*a, **k):  # raise at the step-th file operation of the save
        if calls["n"] == step:
            raise _Interrupt()
        calls["n"] += 1
        return (real_replace if len(a) == 2 and not isinstance(a[0], dict) else real_save)(*a, **k)

    import safetensors.torch as st_torch

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", flaky)
        mp.setattr(st_torch, "save_file", flaky)
        with pytest.raises(_Interrupt):
            io.save(_sv(tiny, strength=9.0, seed=3), path, model=tiny, overwrite=True)
    back = io.load(path, model=tiny)
    assert back.strength == 1.5 and torch.equal(back.vectors["blocks.1.hook_resid_pre"],
                                                  _sv(tiny).vectors["blocks.1.hook_resid_pre"])


_FIELDS = list(io.SCHEMA)
_JUNK = st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=5), st.lists(st.integers(), max_size=2),
                  st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_manifest_corruption_is_always_a_manifest_error(tiny, tmp_path_factory, data):
    path = io.save(_sv(tiny), tmp_path_factory.mktemp("m") / "v", model=tiny)
    m = json.loads((path / io.MANIFEST).read_text())
    how = data.draw(st.sampled_from(["drop", "retype", "config_drop", "config_retype", "truncate"]))
    if how == "drop":
        del m[data.draw(st.sampled_from(_FIELDS))]
    elif how == "retype":
        key = data.draw(st.sampled_from(_FIELDS))
        junk = data.draw(_JUNK.filter(lambda v, key=key: type(v) is not type(m[key])))
        m[key] = junk
    elif how == "config_drop":
        del m["config"][data.draw(st.sampled_from(sorted(m["config"])))]
    elif how == "config_retype":
        m["config"][data.draw(st.sampled_from(sorted(m["config"])))] = data.draw(_JUNK)
    text = json.dumps(m)
    if how == "truncate":
        text = text[: data.draw(st.integers(0, len(text) - 1))]
    (path / io.MANIFEST).write_text(text)
    try:
        io.load(path, model=tiny)  # some edits leave a valid artefact (e.g. an int strength): fine
    except ManifestError:
        pass  # anything else (KeyError, TypeError, UnicodeDecodeError, ...) fails the test


def test_fingerprint_indices_stay_in_range_for_huge_embeddings():
    """Gemma-3-270M's embedding has 167,772,160 entries: a float32 linspace of indices rounded past the end."""
    big = type("M", (), {"cfg": type("C", (), {"model_name": "big"})(), "W_E": torch.zeros(262144, 640)})()
    fp = io.model_fingerprint(big)
    assert len(fp["embed_sample"]) == 32 and fp["dtype"] == "torch.float32"
