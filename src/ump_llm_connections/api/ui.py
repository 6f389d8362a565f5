"""The web UI at ``/ai-compute/connections``: one HTML page and its assets, from the package.

No CDN and no build step: the page's own ES modules and the vendored libraries
(``ui/vendor``, fetched by ``scripts/vendor_ui.py``) are served as they are. The page and its
assets need no token (they hold no data); the page asks for one when the API does, and sends it
with each API call. Everything it shows comes from the public REST API.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS", "PATH", "add_ui", "is_ui_path"]

PATH = "/ai-compute/connections"
ASSETS = f"{PATH}/assets"
FOLDER = resources.files("ump_llm_connections") / "ui"
# The page loads only its own files, talks only to this server, and may not be framed.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def is_ui_path(path: str) -> bool:
    """The page, its assets and ``/`` (a redirect to the page): open without a token."""
    return path in ("/", PATH, f"{PATH}/") or path.startswith(f"{ASSETS}/")


def add_ui(app: FastAPI) -> None:
    page = (FOLDER / "index.html").read_bytes()
    app.mount(ASSETS, StaticFiles(directory=str(FOLDER)), name="ui-assets")

    @app.get(PATH, include_in_schema=False)
    @app.get(f"{PATH}/", include_in_schema=False)
    async def ui_page() -> HTMLResponse:
        return HTMLResponse(page, headers=HEADERS)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(PATH)
