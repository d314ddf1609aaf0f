"""The one quick start: the same code block in README.md, docs/index.md and docs/getting-started.md, and it works
(the steered text differs from the unsteered one and stays fluent)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLACES = ("README.md", "docs/index.md", "docs/getting-started.md")
BLOCK = re.compile(r"<!-- quickstart:start.*?-->\n```python\n(.*?)```\n<!-- quickstart:end -->", re.S)


def _blocks() -> dict[str, str]:
    out = {}
    for name in PLACES:
        found = BLOCK.findall((ROOT / name).read_text())
        assert len(found) == 1, f"{name}: expected one quick start block, found {len(found)}"
        out[name] = found[0]
    return out


def test_one_quick_start_everywhere():
    blocks = _blocks()
    assert len(set(blocks.values())) == 1, "the quick start differs between " + ", ".join(blocks)


def _longest_run(tokens: list[int]) -> int:
    best = run = 1
    for a, b in zip(tokens, tokens[1:], strict=False):
        run = run + 1 if a == b else 1
        best = max(best, run)
    return best


@pytest.mark.slow
def test_quick_start_runs_and_steers_fluently(smollm2, monkeypatch, capsys):
    import tl_steer

    monkeypatch.setattr(tl_steer, "load", lambda *a, **k: smollm2)  # the session's model instead of a second load
    code = _blocks()["README.md"]
    env: dict = {}
    exec(compile(code, "quickstart", "exec"), env)
    plain, steered, prompt = env["plain"], env["steered"], env["prompt"]
    assert steered.startswith(prompt) and steered != plain
    new = smollm2.tokenizer(steered[len(prompt):], add_special_tokens=False)["input_ids"]
    assert len(new) >= 10, steered
    assert _longest_run(new) <= 3, f"a token repeats more than 3 times in a row: {steered!r}"
    assert not re.search(r"(\S+)(\s+\1){3,}", steered), f"a word repeats more than 3 times in a row: {steered!r}"
    printed = capsys.readouterr().out
    assert plain in printed and steered in printed
