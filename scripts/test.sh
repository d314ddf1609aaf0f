#!/usr/bin/env bash
# Run the whole test suite (unit, property and real-model tests), then execute the tutorials and build the docs.
#   bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin/python
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false
"$PY" -m pytest "$@"
if [ -f scripts/build_docs.sh ] && [ -z "${TL_STEER_SKIP_DOCS:-}" ]; then
  VENV=${VENV:-.venv} bash scripts/build_docs.sh
fi
