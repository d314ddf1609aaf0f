#!/usr/bin/env python
"""Bundle the docs' third-party assets so the built site works offline: MathJax 3 (SVG output, no web fonts).

Fetches the ``mathjax`` package tarball from the npm registry (``$NPM_REGISTRY``, default registry.npmjs.org),
checks its SHA-256, and extracts ``es5/tex-mml-svg.js`` to ``docs/javascripts/vendor/mathjax/``. Idempotent: does
nothing when the file is already there. The theme's fonts are the system fonts (``theme.font: false``).
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "docs" / "javascripts" / "vendor" / "mathjax"
VERSION = "3.2.2"
SHA256 = "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"
FILES = ("package/es5/tex-mml-svg.js", "package/LICENSE")


def main() -> int:
    if all((DEST / Path(f).name).is_file() for f in FILES):
        return 0
    registry = os.environ.get("NPM_REGISTRY", "https://registry.npmjs.org").rstrip("/")
    url = f"{registry}/mathjax/-/mathjax-{VERSION}.tgz"
    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            data = r.read()
    except OSError as e:
        print(f"[vendor] cannot fetch {url}: {e}; the docs need MathJax {VERSION} (set NPM_REGISTRY)", file=sys.stderr)
        return 1
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        print(f"[vendor] {url}: sha256 {digest} is not the pinned {SHA256}", file=sys.stderr)
        return 1
    DEST.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for name in FILES:
            (DEST / Path(name).name).write_bytes(tar.extractfile(name).read())
    print(f"[vendor] MathJax {VERSION} -> {DEST.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
