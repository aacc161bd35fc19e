"""The API's Swagger UI, served from this process: no CDN, and a strict CSP.

FastAPI's default docs page loads Swagger UI's script and stylesheet from a
CDN, so whoever serves that CDN runs script on a page of the gateway's origin.
Here the assets come from the `fastapi-offline` package, which ships Swagger
UI's bundle (mounted at `<docs>/assets`), and the page is FastAPI's own
`get_swagger_ui_html` pointed at them. Its one inline script (the call that
starts Swagger UI) is allowed by its SHA-256 in the page's
Content-Security-Policy, so no other inline script could run there.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse

# Swagger UI's stylesheet draws its icons from `data:` SVGs; the rest is ours.
_DOCS_CSP = (
    "default-src 'self'; script-src 'self' {script}; style-src 'self'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def swagger_assets() -> Path:
    """Where the installed `fastapi-offline` keeps Swagger UI's bundle and stylesheet."""
    return Path(str(importlib.resources.files("fastapi_offline") / "static"))


def docs_csp(html: str) -> str:
    """The page's policy: scripts from this origin and the page's own inline ones, by hash."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(html)
    ]
    return _DOCS_CSP.format(script=" ".join(hashes))


def mount_docs(app: FastAPI, *, docs_url: str, openapi_url: str) -> None:
    """Serve Swagger UI at `docs_url`, its assets at `<docs_url>/assets/`."""
    assets = f"{docs_url}/assets"
    app.mount(assets, StaticFiles(directory=swagger_assets()), name="docs-assets")
    page = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{app.title} API",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
        # No badge fetched from validator.swagger.io: the page talks to this origin only.
        swagger_ui_parameters={"validatorUrl": None},
    )
    html = bytes(page.body).decode()
    headers = {
        "Content-Security-Policy": docs_csp(html),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }

    @app.get(docs_url, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        return HTMLResponse(html, headers=headers)


__all__ = ["docs_csp", "mount_docs", "swagger_assets"]
