"""``POST /predict`` and ``POST /invocations``: score applicants, answer, log them after.

The event loop only reads bodies and sends answers. Validating, scoring,
contributions, building the answer and the log rows run in the service's one
scoring thread (:mod:`creditops.serving.batcher`), which takes the requests
queued meanwhile together and scores their rows in one vectorised call
(:mod:`creditops.serving.scored`); a big body (above ``BATCHED_BODY_BYTES``)
is scored alone in a worker thread of the scoring limiter instead, so that it
does not hold up the small ones queued behind it.

Reasons are given for declined applicants only, as reason codes
(:mod:`creditops.reason_codes`): ``{"code", "sentence", "feature", "value"}``,
at most ``[serve] reasons_top_k``, strongest first, never a protected attribute.

Both routes exist twice: as documented FastAPI routes (in the OpenAPI schema)
and as plain endpoints (:func:`direct_endpoints`) the app calls before its
middleware stack, router, dependency solving and parameter parsing: together
they cost more per request than parsing one applicant.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import numpy as np
import orjson
from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import Response

from creditops.errors import StoreError
from creditops.inference.reasons import Reason, names_for, reason_lists
from creditops.serving import schemas
from creditops.serving.bodies import read_body
from creditops.serving.deps import Service, served_model
from creditops.serving.responses import ApiError, error_responses, json_response
from creditops.serving.scored import Answer, Scored, ScoreJob, score_jobs
from creditops.serving.service import ScoringService

__all__ = ["Scored", "direct_endpoints", "router"]

router = APIRouter()
BIG_BODY_BYTES = 256 * 1024  # about 1,700 applicants: the inference log waits for these
# Bodies above this (about 400 applicants) are scored alone, in a worker thread:
# they amortise their per-call costs themselves.
BATCHED_BODY_BYTES = 64 * 1024
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


async def _answer(
    service: ScoringService,
    body: bytes,
    started: float,
    answer: Answer,
    *,
    reasons: bool,
    mlflow: bool,
) -> tuple[Scored, bytes]:
    """Score ``body`` and serialise the ``answer`` off the loop (see the module's docstring)."""
    model = served_model(service)  # this request's model, whatever a reload does meanwhile
    job = ScoreJob(service, model, body, started, answer, reasons, mlflow)
    if len(body) <= BATCHED_BODY_BYTES:
        return await service.batcher.submit(score_jobs, job)
    result = await anyio.to_thread.run_sync(
        lambda: score_jobs([job])[0], limiter=service.scoring_limiter
    )
    if isinstance(result, BaseException):
        raise result
    return result


def _reasons(scored: Scored, top_k: int, protected: tuple[str, ...]) -> list[list[Reason]]:
    """Each applicant's reasons: [] for an approval, up to ``top_k`` codes for a decline."""
    out: list[list[Reason]] = [[] for _ in scored.rows]
    contributions = scored.contributions
    if contributions is None or top_k == 0:
        return out
    names = names_for(scored.model.sources, protected)
    rows = scored.reason_rows
    for i, reasons in zip(
        rows.tolist(), reason_lists(contributions, scored.raw[rows], names, top_k), strict=True
    ):
        out[i] = reasons
    return out


def _logged(service: ScoringService, scored: Scored) -> BackgroundTask:
    # Runs after the answer is sent, so building and queueing log rows costs no
    # latency; in a scoring thread, as the scoring did: not on the loop.
    async def log_rows() -> None:
        _shadow(service, scored)
        if scored.prebuilt_rows is not None:  # queueing them is an append, not a build
            service.log_rows(scored.prebuilt_rows)
            return
        await anyio.to_thread.run_sync(
            lambda: service.log_rows(scored.log_rows()), limiter=service.scoring_limiter
        )

    return BackgroundTask(log_rows)


def _shadow(service: ScoringService, scored: Scored) -> None:
    """Hand the answered rows to the shadowed challenger: a queue put, nothing more."""
    if service.shadow is not None:
        service.shadow.submit(scored.raw, scored.request_ids, ~scored.decline)


async def _unrecorded(service: ScoringService, scored: Scored) -> ApiError | None:
    """``[serve] durability = "acknowledged"``: wait until the rows are durable.

    The writer thread builds the rows and commits them; None once they are
    durable, else the 503 to answer instead (no decision is given off the record).
    """
    try:
        await service.log_durably(scored.log_rows)
    except StoreError as exc:
        return ApiError(503, f"the decision was not recorded, so it is not given: {exc}")
    _shadow(service, scored)  # a queue put: the challenger scores in its own thread
    return None


def _predictions(service: ScoringService, scored: Scored) -> bytes:
    """The ``POST /predict`` answer: each applicant's probability, decision and reasons."""
    ref = scored.model.ref
    all_reasons = _reasons(scored, service.config.reasons_top_k, service.protected)
    predictions = [
        {
            "request_id": scored.request_ids[i],
            "probability": float(scored.probability[i]),
            "decision": "decline" if scored.decline[i] else "approve",
            "explored": bool(scored.explored[i]),
            "reasons": all_reasons[i],
            "model_name": ref.name,
            "model_version": ref.version,
        }
        for i in range(len(scored.rows))
    ]
    return orjson.dumps({"batch_id": scored.batch_id, "predictions": predictions})


def _decisions(service: ScoringService, scored: Scored) -> bytes:
    """The ``POST /invocations`` answer: 1 (decline) or 0 (approve) per row."""
    return orjson.dumps(
        {"predictions": scored.decline.astype(np.int64)}, option=orjson.OPT_SERIALIZE_NUMPY
    )


def _applicant_body() -> dict[str, Any]:
    applicant = schemas.Applicant.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [applicant, {"type": "array", "items": applicant, "minItems": 1}]
                    },
                    "examples": {
                        "one applicant": {"value": schemas.EXAMPLE_APPLICANT},
                        "a list": {
                            "value": [
                                schemas.EXAMPLE_APPLICANT,
                                {**schemas.EXAMPLE_APPLICANT, "Income": None, "Records": "yes"},
                            ]
                        },
                    },
                }
            },
        }
    }


@router.post(
    "/predict",
    response_model=schemas.PredictResponse,
    responses=error_responses(400, 413, 415, 422, 503),
    openapi_extra=_applicant_body(),
    summary="Score one applicant or a list, with reasons",
)
async def predict(request: Request, service: Service, reasons: bool = True) -> Response:
    """Probability of default, decision at the model's threshold, and the top reasons.

    Set `reasons=false` to skip the per-prediction contributions (faster for
    large batches).
    """
    started = time.perf_counter()
    try:
        body = await read_body(request, service.config.max_body_bytes)
        scored, body_out = await _answer(
            service, body, started, _predictions, reasons=reasons, mlflow=False
        )
    except ApiError as exc:
        return exc.response()
    if service.acknowledged:
        refused = await _unrecorded(service, scored)
        return refused.response() if refused else json_response(body_out)
    return json_response(body_out, background=_logged(service, scored))


@router.post(
    "/invocations",
    response_model=schemas.InvocationsResponse,
    responses=error_responses(400, 413, 415, 503, mlflow=True),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object"},
                    "example": {"dataframe_records": [schemas.EXAMPLE_APPLICANT]},
                }
            },
        }
    },
    summary="MLflow scoring protocol",
)
async def invocations(request: Request, service: Service) -> Response:
    """Score rows sent as `mlflow models serve` expects them.

    Answers `{"predictions": [...]}`, one per row: 1 when the model declines
    (predicts bad at its own threshold), 0 when it approves. The batch id is in
    the `X-Batch-Id` header; probabilities and reasons are on `POST /predict`.

    Refusals are MLflow's too: a bad payload is 400 with
    `{"error_code": "BAD_REQUEST", "message": ..., "errors": [...]}`. With
    `[serve] original_codes = true`, categories may be sent as the original
    pipeline's integer codes.
    """
    started = time.perf_counter()
    try:
        body = await read_body(request, service.config.max_body_bytes)
        scored, body_out = await _answer(
            service, body, started, _decisions, reasons=False, mlflow=True
        )
    except ApiError as exc:
        return exc.mlflow_response()
    headers = {"X-Batch-Id": scored.batch_id}
    if service.acknowledged:
        refused = await _unrecorded(service, scored)
        return refused.mlflow_response() if refused else json_response(body_out, headers=headers)
    return json_response(body_out, headers=headers, background=_logged(service, scored))


# --- the scoring endpoints without FastAPI's per-request machinery --------------------


@contextlib.contextmanager
def _holding_log_if_big(request: Request, service: ScoringService) -> Iterator[None]:
    """While a big body is handled, the inference log waits (see ``InferenceLogWriter``)."""
    declared = request.headers.get("content-length", "")
    big = declared.isdigit() and int(declared) > BIG_BODY_BYTES
    if big:
        service.big_requests += 1
    try:
        yield
    finally:
        if big:
            service.big_requests -= 1


async def _predict_direct(request: Request) -> Response:
    flag = request.query_params.get("reasons", "true").lower()
    if flag not in _TRUE | _FALSE:
        return ApiError(422, f"query parameter reasons={flag!r} is not true or false").response()
    service: ScoringService = request.app.state.service
    with _holding_log_if_big(request, service):
        return await predict(request, service, reasons=flag in _TRUE)


async def _invocations_direct(request: Request) -> Response:
    service: ScoringService = request.app.state.service
    with _holding_log_if_big(request, service):
        return await invocations(request, service)


def direct_endpoints() -> dict[str, Callable[[Request], Awaitable[Response]]]:
    """``POST /predict`` and ``POST /invocations`` by path, for :class:`~creditops.serving.app.ScoringApp`.

    The app answers them before its middleware stack and router; the
    documented FastAPI routes stay in the OpenAPI schema.
    """
    return {"/predict": _predict_direct, "/invocations": _invocations_direct}
