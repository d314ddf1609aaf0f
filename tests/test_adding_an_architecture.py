"""docs/adding-an-architecture.md adds StableLM with one ArchSites entry; its code blocks run as written, in order:
the table checks against the bridge and the fast path then steers StableLM as the bridge does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tl_steer.arch import ARCH_SITES, ArchSites, register_arch
from tl_steer.errors import SteeringError

ROOT = Path(__file__).resolve().parents[1]


def test_adding_an_architecture_page_runs():
    assert "stablelm" not in ARCH_SITES  # the page adds a family that is not shipped
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "adding-an-architecture.md").read_text(), re.S)
    assert len(blocks) == 3
    env: dict = {}
    try:
        for block in blocks:
            exec(compile(block, "docs/adding-an-architecture.md", "exec"), env)  # noqa: S102 - the page's own code
        assert ARCH_SITES["stablelm"] is env["table"]
        assert set(env["report"]) == {"resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "z", "mlp_post"}
        assert isinstance(env["report"]["resid_mid"], str)
    finally:
        ARCH_SITES.pop("stablelm", None)


def test_register_arch_refuses_taken_names_and_non_tables():
    with pytest.raises(SteeringError, match="already has a site table"):
        register_arch("llama", ARCH_SITES["llama"])
    with pytest.raises(SteeringError, match="needs an ArchSites"):
        register_arch("new_family", {"layers": "model.layers"})  # type: ignore[arg-type]
    assert "new_family" not in ARCH_SITES
    assert register_arch("llama", ARCH_SITES["llama"], replace=True) is ARCH_SITES["llama"]
    assert isinstance(ARCH_SITES["llama"], ArchSites)
