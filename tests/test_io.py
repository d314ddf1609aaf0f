import json

import pytest
import torch

from tl_steer import ManifestError, io
from tl_steer.methods.vector import SteeringVectors
from tl_steer.models import tiny_model


def _sv(model):
    g = torch.Generator().manual_seed(0)
    return SteeringVectors({"blocks.1.hook_resid_pre": torch.randn(model.cfg.d_model, generator=g)}, coef=1.5)


def test_round_trip_exact(tiny, tmp_path):
    sv = _sv(tiny)
    io.save(sv, tmp_path / "v", model=tiny, note="hello")
    back = io.load(tmp_path / "v", model=tiny, expect=SteeringVectors)
    assert back.coef == sv.coef
    for k in sv.vectors:
        assert torch.equal(back.vectors[k], sv.vectors[k])
    manifest = io.read_manifest(tmp_path / "v")
    assert manifest["method"] == "steering_vectors" and manifest["extra"] == {"note": "hello"}
    assert manifest["model"]["d_model"] == tiny.cfg.d_model


def test_corrupt_files_fail_clearly(tiny, tmp_path):
    path = io.save(_sv(tiny), tmp_path / "v", model=tiny)
    data = bytearray((path / io.TENSORS).read_bytes())
    data[-1] ^= 0xFF
    (path / io.TENSORS).write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="checksum"):
        io.load(path)
    (path / io.MANIFEST).write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        io.load(path)
    with pytest.raises(ManifestError, match="manifest.json is missing"):
        io.load(tmp_path / "nothing")


def test_model_mismatch_and_wrong_method(tiny, tmp_path):
    path = io.save(_sv(tiny), tmp_path / "v", model=tiny)
    other = tiny_model(seed=1)
    with pytest.raises(ManifestError, match="another model"):
        io.load(path, model=other)
    assert io.load(path, model=other, strict=False).coef == 1.5
    with pytest.raises(ManifestError, match="not 'mat_steer'"):
        io.load(path, expect="mat_steer")
    bigger = tiny_model(n_layers=1)
    with pytest.raises(ManifestError, match="n_layers"):
        io.load(path, model=bigger)


def test_unknown_format_version(tiny, tmp_path):
    path = io.save(_sv(tiny), tmp_path / "v", model=tiny)
    m = json.loads((path / io.MANIFEST).read_text())
    m["format_version"] = 99
    (path / io.MANIFEST).write_text(json.dumps(m))
    with pytest.raises(ManifestError, match="format_version 99"):
        io.load(path)
