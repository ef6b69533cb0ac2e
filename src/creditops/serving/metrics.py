"""Prometheus metrics of the scoring service, and the ASGI middleware that counts requests.

Each app has its own registry (tests build several apps in one process). With
``workers > 1`` every worker process keeps its own counters: a scrape reaches
one worker, so aggregate across scrapes by ``instance``/``pid`` labels, or run
one worker per container (see docs).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ROUTES = frozenset(
    {
        "/predict",
        "/invocations",
        "/feedback",
        "/health",
        "/ready",
        "/model",
        "/metrics",
        "/ping",
        "/version",
        "/admin/reload",
        "/docs",
        "/openapi.json",
    }
)
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class ServiceMetrics:
    """The counters, histograms and gauges ``GET /metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "creditops_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "creditops_request_latency_seconds",
            "Request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "creditops_decisions", "Scored applicants by decision", ["decision"], registry=r
        )
        self.rows_rejected = Counter(
            "creditops_rows_rejected", "Rows refused for breaking the contract", registry=r
        )
        self.model_version = Gauge(
            "creditops_model_version", "Version of the model being served (0: none)", registry=r
        )
        self.model_info = Gauge(
            "creditops_model_info",
            "The served model (value 1)",
            ["name", "version", "family", "path"],
            registry=r,
        )
        self.reloads = Counter(
            "creditops_model_reloads", "Model swaps by outcome", ["outcome"], registry=r
        )
        self._add_log_metrics(r)
        self._add_shadow_metrics(r)
        self._children: dict[tuple[str, int], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}

    def _add_log_metrics(self, r: CollectorRegistry) -> None:
        """The inference log's figures: pending, written, failed, journaled, lost rows."""
        self.log_pending = Gauge(
            "creditops_inference_log_pending", "Scored rows waiting to be written", registry=r
        )
        self.log_written = Counter(
            "creditops_inference_log_written_rows", "Rows written to the inference log", registry=r
        )
        self.log_failures = Counter(
            "creditops_inference_log_write_failures",
            "Failed writes to the inference log (retried)",
            registry=r,
        )
        self.log_spilled = Counter(
            "creditops_log_rows_spilled",
            "Rows synced to the journal, the store unavailable (`creditops store replay`)",
            registry=r,
        )
        self.log_lost = Counter(
            "creditops_log_rows_lost",
            "Rows neither stored nor journaled (the journal not writable)",
            registry=r,
        )
        self.log_queue = Gauge(
            "creditops_log_queue_rows", "Rows (or acknowledged requests) waiting", registry=r
        )
        self.journal_files = Gauge(
            "creditops_log_journal_files", "Journal files this process wrote rows to", registry=r
        )

    def _add_shadow_metrics(self, r: CollectorRegistry) -> None:
        """The shadowed challenger's figures ([serve] shadow): rows, agreement, errors."""
        self.shadow_rows = Counter(
            "creditops_shadow_rows", "Applicants the challenger scored in the shadow", registry=r
        )
        self.shadow_agreements = Counter(
            "creditops_shadow_agreements",
            "Shadow-scored applicants whose challenger decision equals the champion's",
            registry=r,
        )
        self.shadow_agreement = Gauge(
            "creditops_shadow_agreement",
            "Share of shadow-scored applicants on whose decision both models agree",
            registry=r,
        )
        self.shadow_errors = Counter(
            "creditops_shadow_errors",
            "Challenger failures (load, score, log); champion answers are unaffected",
            ["stage"],
            registry=r,
        )
        self.shadow_dropped = Counter(
            "creditops_shadow_dropped_rows",
            "Applicants not shadow-scored: the shadow queue was full",
            registry=r,
        )
        self.shadow_version = Gauge(
            "creditops_shadow_version", "Version of the shadowed challenger (0: none)", registry=r
        )

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request (children cached: labels() is slow on the hot path)."""
        key = (route, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(route, str(status))
        child.inc()
        latency = self._latency_children.get(route)
        if latency is None:
            latency = self._latency_children[route] = self.latency.labels(route)
        latency.observe(seconds)


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP answer by route and status, times it."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        route = path if path in ROUTES else "other"
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe_request(route, status, time.perf_counter() - started)
