"""The scoring endpoints the app answers before its middleware stack: counted, errors answered."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import httpx
from prometheus_client import generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from creditops.serving.app import ScoringApp
from creditops.serving.metrics import ServiceMetrics
from creditops.serving.responses import add_error_handlers


async def _broken(request: Request) -> Response:
    raise KeyError("a bug")


def _app() -> ScoringApp:
    """A fresh app per test: its own metrics, so each test's counts are its own."""
    app = ScoringApp()

    async def _ok(request: Request) -> Response:
        body = (await request.body()).decode()
        return JSONResponse({"body": body, "app": request.app is app})

    app.state.service = SimpleNamespace(metrics=ServiceMetrics())
    app.direct = {"/predict": _ok, "/invocations": _broken}
    add_error_handlers(app)

    @app.get("/predict")
    async def _documented() -> dict[str, str]:
        return {"via": "fastapi"}

    return app


def _call(app: ScoringApp, method: str, path: str, body: bytes = b"") -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, path, content=body)

    return asyncio.run(go())


def test_a_direct_endpoint_answers_and_is_counted() -> None:
    app = _app()
    answer = _call(app, "POST", "/predict", b"hello")
    assert answer.status_code == 200
    assert answer.json() == {"body": "hello", "app": True}
    text = generate_latest(app.state.service.metrics.registry).decode()
    assert 'creditops_requests_total{route="/predict",status="200"} 1.0' in text


def test_an_unexpected_error_is_the_apps_500_and_is_counted() -> None:
    app = _app()
    answer = _call(app, "POST", "/invocations")
    assert answer.status_code == 500
    assert answer.json() == {
        "detail": "internal error (KeyError); see the server log",
        "errors": [],
    }
    text = generate_latest(app.state.service.metrics.registry).decode()
    assert 'creditops_requests_total{route="/invocations",status="500"} 1.0' in text


def test_other_methods_and_paths_go_through_fastapi() -> None:
    app = _app()
    assert _call(app, "GET", "/predict").json() == {"via": "fastapi"}
    assert _call(app, "POST", "/feedback").status_code == 404
    assert (
        "creditops_requests_total{"
        not in generate_latest(app.state.service.metrics.registry).decode()
    )  # not counted by the direct path
