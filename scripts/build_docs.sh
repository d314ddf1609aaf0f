#!/usr/bin/env bash
# Build the documentation site: execute every tutorial (regenerating docs/tutorials/*.md and docs/figures/),
# then run `mkdocs build --strict`. Fails if any tutorial cell fails or mkdocs reports any warning.
# Usage: scripts/build_docs.sh [mkdocs build args...]      e.g. scripts/build_docs.sh --site-dir /tmp/site
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg TOKENIZERS_PARALLELISM=false NO_MKDOCS_2_WARNING=1
PY=python
if [ -x "${VENV:-.venv}/bin/python" ]; then PY="${VENV:-.venv}/bin/python"; fi
"$PY" scripts/render_tutorials.py
"$PY" -m mkdocs build --strict "$@"
