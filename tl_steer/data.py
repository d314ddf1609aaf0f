"""Where the evaluation datasets live: ``$TL_STEER_DATA``, else ``../shared/data`` beside the project."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """Where the evaluation data lives: ``$TL_STEER_DATA``, else ``../shared/data`` next to the project."""
    env = os.environ.get("TL_STEER_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent  # project root (editable install / checkout)
    for cand in (here.parent / "shared" / "data", Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data"):
        if cand.is_dir():
            return cand
    return here.parent / "shared" / "data"

