"""``POST /feedback``: the observed outcome of a scored applicant, stored with its inference."""

from __future__ import annotations

import time

import anyio
import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from creditops import schema
from creditops.errors import StoreError
from creditops.serving import schemas
from creditops.serving.bodies import read_json
from creditops.serving.deps import Service
from creditops.serving.responses import ApiError, error_responses, json_response
from creditops.serving.service import ScoringService
from creditops.serving.store import OutcomeResult

router = APIRouter()
FEEDBACK_WAIT_SECONDS = 5.0
FEEDBACK_BODY_BYTES = 4096


@router.post(
    "/feedback",
    response_model=schemas.FeedbackResponse,
    responses=error_responses(404, 409, 415, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": schemas.FeedbackRequest.model_json_schema(),
                    "example": {"request_id": "0" * 32, "outcome": "bad"},
                }
            },
        }
    },
    summary="Report the observed outcome of a scored applicant",
)
async def feedback(request: Request, service: Service) -> Response:
    """Store the outcome (good/bad) with its inference.

    404 for an unknown request id, 409 if a different outcome is already stored;
    repeating the same outcome is harmless.
    """
    try:
        item = _feedback_item(await read_json(request, FEEDBACK_BODY_BYTES))
        result = await anyio.to_thread.run_sync(_record, service, item.request_id, item.outcome)
    except ApiError as exc:
        return exc.response()
    status = "recorded" if result is OutcomeResult.RECORDED else "unchanged"
    return json_response(
        orjson.dumps({"request_id": item.request_id, "outcome": item.outcome, "status": status})
    )


def _feedback_item(body: object) -> schemas.FeedbackRequest:
    """The validated feedback body; 422 naming each broken rule."""
    try:
        return schemas.FeedbackRequest.model_validate(body)
    except ValidationError as exc:
        errors = [
            schema.Violation(1, ".".join(map(str, e["loc"])) or "(body)", e.get("input"), e["msg"])
            for e in exc.errors(include_url=False)
        ]
        raise ApiError(422, f"invalid feedback: {errors[0]}", errors) from None


def _record(service: ScoringService, request_id: str, outcome: str) -> OutcomeResult:
    writer = service.writer
    if writer.is_pending(request_id) and not writer.wait_written(request_id, FEEDBACK_WAIT_SECONDS):
        raise ApiError(503, "the inference log is not writable right now; retry the feedback later")
    # Another worker or replica may have scored it and not flushed yet: look again
    # for a few of its flush intervals before answering 404.
    # (a busy worker holds its rows up to the writer's max_delay, then flushes)
    deadline = time.monotonic() + min(
        FEEDBACK_WAIT_SECONDS,
        max(1.0, writer.max_delay + 5 * service.config.flush_interval_seconds),
    )
    while True:
        try:
            result = service.store.record_outcome(request_id, outcome)
        except StoreError as exc:
            raise ApiError(503, f"the inference log is not writable right now: {exc}") from None
        if result is not OutcomeResult.UNKNOWN or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if result is OutcomeResult.UNKNOWN:
        raise ApiError(404, f"no inference has request id {request_id}")
    if result is OutcomeResult.CONFLICT:
        raise ApiError(
            409,
            f"request {request_id} already has the outcome "
            f"{'bad' if outcome == 'good' else 'good'!r}; {outcome!r} would contradict it",
        )
    return result
