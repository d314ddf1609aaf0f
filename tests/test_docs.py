"""The docs' claims point at real tests."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_the_guarantees_page_cites_exists():
    text = (ROOT / "docs" / "guarantees.md").read_text()
    last, cited, missing = None, 0, []
    for m in re.finditer(r"`(tests/[\w/]+\.py)?::(\w+)`", text):
        path = m.group(1) or last
        last = path
        cited += 1
        if f"def {m.group(2)}(" not in (ROOT / path).read_text():
            missing.append(f"{path}::{m.group(2)}")
    assert cited >= 20 and not missing, missing
