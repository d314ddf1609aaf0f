#!/usr/bin/env bash
# The test command: build the docs (executes every tutorial notebook on a Jupyter kernel, then
# `mkdocs build --strict`), then run the whole test suite (unit, property, real-model, and the headless-browser test
# of the built site).
#   bash scripts/test.sh [pytest args...]        TL_STEER_SKIP_DOCS=1 skips the docs build (the browser test then
#                                                uses an existing site/ or skips with a message)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin/python
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false
if [ -z "${TL_STEER_SKIP_DOCS:-}" ]; then
  VENV=${VENV:-.venv} bash scripts/build_docs.sh
fi
"$PY" -m pytest "$@"
