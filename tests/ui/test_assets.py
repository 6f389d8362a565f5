"""The web UI's files: served from the package with their security headers, the vendored
libraries as recorded, and small (opening the page without a token: test_signin.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "src" / "ump_llm_connections" / "ui"
BUDGET = 200 * 1024  # the UI's own JS and CSS, uncompressed (bench/ui.py measures each page)


def test_the_vendored_libraries_are_the_recorded_ones() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/vendor_ui.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_uis_own_assets_stay_under_200_kb() -> None:
    assets = [p for p in UI.rglob("*") if p.suffix in (".js", ".css") and "vendor" not in p.parts]
    assert sum(p.stat().st_size for p in assets) < BUDGET


def test_the_page_is_served_with_its_policy_and_needs_no_token(api: httpx.Client) -> None:
    page = api.get("/ai-compute/connections")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert '/ai-compute/connections/assets/js/main.js"' in page.text
    module = api.get("/ai-compute/connections/assets/vendor/preact.js")
    assert module.status_code == 200
    assert module.headers["content-type"].startswith("text/javascript")
    root = api.get("/", follow_redirects=False)
    assert root.headers["location"].endswith("/ai-compute/connections")
