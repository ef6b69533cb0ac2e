"""``creditops dashboard --serve``: the page served live, re-rendered from the table.

Bound to 127.0.0.1 by default. Bound elsewhere, it requires a viewer key
(``[dashboard] viewer_key``): sent as the ``X-Viewer-Key`` header, or once as
``?key=`` in the address, which then sets a cookie so the page's own refreshes
need not carry it. The page reloads itself every ``refresh_seconds``; each
load reads the monitoring table again.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from creditops.config import DashboardConfig
from creditops.dashboard.page import render_page
from creditops.errors import ConfigError, StoreError
from creditops.infra import is_loopback
from creditops.listening import check_address
from creditops.secrets import redact_url

log = logging.getLogger(__name__)

COOKIE = "creditops_viewer"


def check_exposure(config: DashboardConfig, host: str) -> None:
    """Refuse to serve beyond loopback without a viewer key."""
    if not is_loopback(host) and not config.viewer_key.get_secret_value():
        raise ConfigError(
            f"[dashboard] host {host!r} is not loopback: set [dashboard] viewer_key "
            "(better: CREDITOPS_DASHBOARD__VIEWER_KEY) before exposing the dashboard"
        )


def dashboard_app(
    read: Callable[[], pd.DataFrame], *, source: str, config: DashboardConfig
) -> Starlette:
    """The live dashboard as an ASGI app.

    Args:
        read: reads the monitoring table (called on every page load).
        source: the table's URL, shown on the page (redacted).
        config: the ``[dashboard]`` section (refresh interval, viewer key).
    """
    key = config.viewer_key.get_secret_value()

    def allowed(request: Request) -> bool:
        if not key:
            return True
        offered = (
            request.headers.get("x-viewer-key")
            or request.query_params.get("key")
            or request.cookies.get(COOKIE)
            or ""
        )
        return hmac.compare_digest(offered.encode(), key.encode())

    async def page(request: Request) -> Response:
        if not allowed(request):
            return PlainTextResponse(
                "a viewer key is required: header X-Viewer-Key or ?key=", status_code=401
            )
        try:
            table = read()
        except StoreError as exc:
            return PlainTextResponse(f"the monitoring table cannot be read: {exc}", 503)
        html = render_page(table, source=source, refresh_seconds=config.refresh_seconds)
        response = HTMLResponse(html)
        if key and request.query_params.get("key"):
            response.set_cookie(COOKIE, key, httponly=True, samesite="strict")
        return response

    async def health(_: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/", page), Route("/healthz", health)])


def serve_dashboard(
    read: Callable[[], pd.DataFrame], *, source: str, config: DashboardConfig, host: str, port: int
) -> None:
    """Serve the live dashboard until interrupted."""
    import uvicorn

    check_exposure(config, host)
    check_address(host, port, "[dashboard] host/port or --host/--port")
    log.info("dashboard: serving http://%s:%d/ (table %s)", host, port, redact_url(source))
    uvicorn.run(
        dashboard_app(read, source=source, config=config),
        host=host,
        port=port,
        log_level="warning",
    )
