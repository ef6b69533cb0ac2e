"""The scoring app: the factory that wires the service into FastAPI, and its lifespan.

``create_app`` builds one :class:`~creditops.serving.service.ScoringService`
(the champion, the inference log, the metrics), starts it when the app starts
and drains it when the app stops. ``app_from_env`` is the factory uvicorn
imports when it runs several workers: it reads the config file named by
``CREDITOPS_CONFIG``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from creditops.config import MlflowConfig, ServeConfig, load_config
from creditops.reason_codes import DEFAULT_PROTECTED
from creditops.serving.metrics import MetricsMiddleware
from creditops.serving.prefetch import Prefetch
from creditops.serving.responses import add_error_handlers, unexpected_error_handler
from creditops.serving.routes import admin, feedback, scoring, status
from creditops.serving.service import ScoringService
from creditops.serving.store import InferenceStore

CONFIG_ENV = "CREDITOPS_CONFIG"
Endpoint = Callable[[Request], Awaitable[Response]]


class ScoringApp(FastAPI):
    """The FastAPI app, with the scoring endpoints answered before its middleware stack.

    ``POST /predict`` and ``POST /invocations`` (``direct``) skip FastAPI's
    telemetry check, Starlette's error and exception middleware and the
    router (the body limit is the endpoints' own, as on every path): on one
    applicant those cost about as much as reading its body.
    What the stack gives them is done here: the request is counted and timed
    in the service's metrics (as :class:`MetricsMiddleware` counts the others),
    and an unexpected error is answered by the app's 500 handler. Everything
    else goes through FastAPI as usual.
    """

    direct: dict[str, Endpoint]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.direct.get(scope["path"])
            if endpoint is not None:
                await self._direct(endpoint, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _direct(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        scope["app"] = self
        request = Request(scope, receive, send)
        status = 500
        try:
            try:
                response = await endpoint(request)
            except Exception as exc:  # as ServerErrorMiddleware would, with the app's body
                response = await unexpected_error_handler(request, exc)
            status = response.status_code
            await response(scope, receive, send)  # the answer, then its background task
        finally:
            self.state.service.metrics.observe_request(
                scope["path"], status, time.perf_counter() - started
            )


def create_app(
    config: ServeConfig,
    mlflow: MlflowConfig,
    *,
    store: InferenceStore | None = None,
    prefetch: Prefetch | None = None,
    gc_paused: bool = False,
    protected: tuple[str, ...] = DEFAULT_PROTECTED,
) -> FastAPI:
    """The scoring app for the ``[serve]`` and ``[mlflow]`` sections.

    Args:
        config: the ``[serve]`` section.
        mlflow: the ``[mlflow]`` section: where the champion is registered.
        store: replaces the configured inference store (tests).
        prefetch: a helper already fetching the champion (see ``prefetch``).
        gc_paused: the caller turned the cyclic GC off for start-up; the service
            turns it back on once the champion is loaded (or found missing).
        protected: ``[fairness] protected``: never given as a reason.
    """
    service = ScoringService(
        config, mlflow, store=store, prefetch=prefetch, gc_paused=gc_paused, protected=protected
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = ScoringApp(
        title="creditops scoring service",
        version="1",
        description=(
            "Probability of default for credit applicants, with the reasons behind each "
            "decision. Send applicants in natural values to `POST /predict`; MLflow clients "
            "use `POST /invocations`. Report outcomes to `POST /feedback`."
        ),
        lifespan=lifespan,
    )
    app.state.service = service
    for module in (scoring, feedback, status, admin):  # the order /openapi.json lists them in
        app.include_router(module.router)
    app.direct = scoring.direct_endpoints()
    add_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: reads the config named by ``CREDITOPS_CONFIG``."""
    from creditops.logs import configure_logging

    path = os.environ.get(CONFIG_ENV) or None
    settings = load_config(path)
    configure_logging(settings.logging)
    return create_app(settings.serve, settings.mlflow, protected=tuple(settings.fairness.protected))
