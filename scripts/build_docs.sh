#!/usr/bin/env bash
# Build the documentation site: bundle MathJax (offline site), execute every tutorial notebook on a real Jupyter
# kernel (nbclient + ipykernel) into docs/tutorials/, then `mkdocs build --strict`. Fails if a notebook is out of
# sync with its script, a cell fails, or mkdocs reports any warning.
# Usage: scripts/build_docs.sh [mkdocs build args...]      e.g. scripts/build_docs.sh --site-dir /tmp/site
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false NO_MKDOCS_2_WARNING=1 PYDEVD_DISABLE_FILE_VALIDATION=1
PY=python
if [ -x "${VENV:-.venv}/bin/python" ]; then PY="${VENV:-.venv}/bin/python"; fi
"$PY" scripts/vendor_assets.py
"$PY" scripts/notebooks.py check
"$PY" scripts/notebooks.py execute
"$PY" -m mkdocs build --strict "$@"
