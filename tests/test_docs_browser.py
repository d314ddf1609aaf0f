"""The built docs site in a real headless browser (Chromium via Playwright): formulas typeset, figures load, search
finds "patching", no page shows a raw Sphinx role, and nothing is fetched from outside the site (it works offline).

Needs the site (``scripts/build_docs.sh``, which the test command runs first) and a Chromium: Playwright's own, or
the Debian ``chromium`` package (``apt-get install chromium``). Skips with a message when either is missing.
Screenshots go to ``$TL_STEER_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "site"
ROLE = re.compile(r":(func|class|meth|mod|data|attr|exc|obj):`")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # no access log on stderr
        pass


@pytest.fixture(scope="module")
def browser_page():
    if not (SITE / "index.html").is_file():
        pytest.skip(f"no built site at {SITE}: run `bash scripts/build_docs.sh` first (the test command does)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    exe = _chromium()
    handler = functools.partial(_Quiet, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    with playwright.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"]) if exe else p.chromium.launch()
        except Exception as e:  # no browser binary
            server.shutdown()
            pytest.skip(f"no Chromium to run: {str(e).splitlines()[0]} (apt-get install chromium)")
        page = browser.new_page()
        outside: list[str] = []
        # the theme's repository widget asks api.github.com for star counts (offline it shows just the name): the
        # one request allowed to leave the site
        local = (base, "data:", "blob:", "https://api.github.com/repos/")
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(local) else None)
        yield page, base, outside
        browser.close()
    server.shutdown()


def _shot(page, name: str) -> None:
    folder = os.environ.get("TL_STEER_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=False)


def test_formulas_are_typeset(browser_page):
    page, base, outside = browser_page
    for path in ("methods/sadi/", "methods/mat_steer/", "tutorials/02_mat_steer/"):
        page.goto(base + path)
        page.wait_for_selector("mjx-container", timeout=20_000)
        n = page.locator("mjx-container").count()
        raw = page.evaluate("""() => [...document.querySelectorAll('.arithmatex')]
            .filter(e => !e.querySelector('mjx-container')).length""")
        assert n > 0 and raw == 0, (path, n, raw)
        _shot(page, path.strip("/").replace("/", "_"))
    assert not outside, f"requests outside the site: {outside[:5]}"


def test_figures_load(browser_page):
    page, base, outside = browser_page
    for path, at_least in (("tutorials/03_sadi_heads/", 2), ("tutorials/01_first_steering_vector/", 1), ("results/", 1)):
        page.goto(base + path)
        page.wait_for_load_state("load")
        sizes = page.evaluate("() => [...document.querySelectorAll('article img')].map(i => i.complete ? i.naturalWidth : 0)")
        assert len(sizes) >= at_least and all(w > 0 for w in sizes), (path, sizes)
        _shot(page, path.strip("/").replace("/", "_"))
    assert not outside, f"requests outside the site: {outside[:5]}"


def test_search_finds_patching(browser_page):
    page, base, _ = browser_page
    page.goto(base)
    page.wait_for_load_state("networkidle")
    box = page.locator("input.md-search__input")
    box.click()
    box.press_sequentially("patching", delay=30)  # the theme searches on key events, as a reader types
    page.wait_for_selector(".md-search-result__item", timeout=20_000)
    hits = page.locator(".md-search-result__item").all_inner_texts()
    assert hits and any("patching" in h.lower() for h in hits), hits[:3]
    _shot(page, "search_patching")


def test_no_page_shows_a_raw_sphinx_role(browser_page):
    page, base, _ = browser_page
    pages = sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("index.html"))
    assert len(pages) > 20
    shown = []
    for rel in pages:
        page.goto(base + rel)
        text = page.locator("article").first.inner_text() if page.locator("article").count() else ""
        if ROLE.search(text):
            shown.append(rel)
    assert not shown, f"raw Sphinx roles on {shown}"


def _machine_paths() -> list[str]:
    import sys

    paths = {str(ROOT), sys.prefix, sys.base_prefix, os.path.expanduser("~"), os.path.realpath(sys.prefix)}
    return sorted((p for p in paths if p and p != "/"), key=len, reverse=True)


def test_no_file_of_the_site_holds_a_path_of_the_building_machine():
    """Pages, downloadable notebooks and the search index: none names the checkout, the venv or the home folder."""
    if not (SITE / "index.html").is_file():
        pytest.skip(f"no built site at {SITE}: run `bash scripts/build_docs.sh` first (the test command does)")
    hits = []
    for f in SITE.rglob("*"):
        if f.is_file() and f.suffix in (".html", ".ipynb", ".json", ".js", ".txt", ".xml"):
            text = f.read_text(encoding="utf-8", errors="ignore")
            hits += [f"{f.relative_to(SITE)}: {p}" for p in _machine_paths() if p in text]
    assert not hits, hits[:10]


def test_every_page_is_free_of_stderr_blocks_and_warnings(browser_page):
    """What a reader sees on every page of the site: no stderr output block (red in the theme), no 'Warning' in any
    notebook output, no absolute filesystem path."""
    page, base, _ = browser_page
    pages = sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("index.html"))
    bad: list[str] = []
    notebooks = 0
    for rel in pages:
        page.goto(base + rel)
        found = page.evaluate("""() => {
            const stderr = document.querySelectorAll(
              '[data-mime-type="application/vnd.jupyter.stderr"], .output_stderr, .jp-OutputArea-output.stderr').length;
            const outs = [...document.querySelectorAll('.jp-OutputArea-output, .output_area, .jp-RenderedText')];
            return {stderr, notebook: outs.length > 0,
                    warning: outs.filter(o => /\\bWarning\\b/.test(o.innerText)).map(o => o.innerText.slice(0, 80)),
                    text: document.querySelector('article') ? document.querySelector('article').innerText : ''};
        }""")
        notebooks += found["notebook"]
        if found["stderr"]:
            bad.append(f"{rel}: {found['stderr']} stderr block(s)")
        if found["warning"]:
            bad.append(f"{rel}: warning in an output: {found['warning'][0]!r}")
        for p in _machine_paths():
            if p in found["text"]:
                bad.append(f"{rel}: shows the path {p}")
    assert notebooks >= 5, f"only {notebooks} notebook pages found: the check would not see their outputs"
    assert not bad, bad[:10]
