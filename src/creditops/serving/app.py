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
from collections.abc import AsyncIterator

from fastapi import FastAPI

from creditops.config import MlflowConfig, ServeConfig, load_config
from creditops.reason_codes import DEFAULT_PROTECTED
from creditops.serving.metrics import MetricsMiddleware
from creditops.serving.prefetch import Prefetch
from creditops.serving.responses import add_error_handlers
from creditops.serving.routes import admin, feedback, scoring, status
from creditops.serving.service import ScoringService
from creditops.serving.store import InferenceStore

CONFIG_ENV = "CREDITOPS_CONFIG"


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

    app = FastAPI(
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
    app.router.routes[:0] = scoring.direct_routes()
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
