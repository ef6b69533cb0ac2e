"""``POST /feedback``: the observed outcome of a scored applicant, stored with its inference.

Outcomes drive the retraining trigger and become retraining data, so the
route takes them only with ``[serve] feedback_api_key`` (its own key, not the
admin key), sent as ``X-Feedback-Key`` or ``Authorization: Bearer``. Each
stored outcome records which key posted it (:func:`key_id`, never the key).

Nothing here waits in a worker thread: the pool is the one scoring uses. An id
still queued in this process's log writer is awaited on the event loop; an id
that is not stored is looked for again (on the loop, between short lookups)
only while another worker may still hold it, which its issue time tells
(:mod:`~creditops.serving.request_ids`); any other unknown id is 404 at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import anyio
import orjson
from fastapi import APIRouter, Header, Request
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import Response

from creditops import schema
from creditops.errors import StoreError
from creditops.secrets import redact_text
from creditops.serving import schemas
from creditops.serving.bodies import read_json
from creditops.serving.credit_time import OBSERVED_FIELD
from creditops.serving.deps import Service
from creditops.serving.request_ids import issued_at
from creditops.serving.responses import ApiError, error_responses, json_response
from creditops.serving.service import ScoringService
from creditops.serving.store import OutcomeResult

router = APIRouter()
FEEDBACK_KEY_HEADER = "X-Feedback-Key"
# The longest a feedback waits for a row queued in this process (the store may be down).
FEEDBACK_WAIT_SECONDS = 5.0
# How far the clocks of two replicas may disagree about an id's issue time.
CLOCK_SKEW_SECONDS = 1.0
FEEDBACK_BODY_BYTES = 4096
_DISABLED = (
    "feedback is disabled: set [serve] feedback_api_key (CREDITOPS_SERVE__FEEDBACK_API_KEY) "
    f"and send it in the {FEEDBACK_KEY_HEADER} header"
)


def key_id(key: str) -> str:
    """The id stored with each outcome a key posts: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


@router.post(
    "/feedback",
    response_model=schemas.FeedbackResponse,
    responses=error_responses(401, 403, 404, 409, 415, 422, 503),
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
async def feedback(
    request: Request,
    service: Service,
    x_feedback_key: Annotated[str | None, Header(description="`[serve] feedback_api_key`")] = None,
    authorization: Annotated[
        str | None, Header(description="`Bearer KEY`, instead of X-Feedback-Key")
    ] = None,
) -> Response:
    """Store the outcome (good/bad) with its inference. Needs the feedback key.

    401 without a key, 403 with a wrong one, 404 for an unknown request id, 409
    if a different outcome is already stored or the applicant was declined (no
    loan, so no outcome; explored applicants were granted), 422 for an
    ``observed_at`` in the future or before the application; repeating the same
    outcome is harmless.
    """
    try:
        source = _poster(service, x_feedback_key, authorization)
        item = _feedback_item(await read_json(request, FEEDBACK_BODY_BYTES))
        result = await _record(service, item, source)
    except ApiError as exc:
        return exc.response()
    status = "recorded" if result is OutcomeResult.RECORDED else "unchanged"
    return json_response(
        orjson.dumps({"request_id": item.request_id, "outcome": item.outcome, "status": status})
    )


def _poster(service: ScoringService, header: str | None, authorization: str | None) -> str:
    """The key id of the caller's feedback key; 503, 401 or 403 refuses it."""
    expected = service.config.feedback_api_key.get_secret_value()
    if not expected:
        raise ApiError(503, _DISABLED)
    sent = header
    if sent is None and authorization and authorization[:7].lower() == "bearer ":
        sent = authorization[7:].strip()
    if not sent:
        raise ApiError(
            401,
            f"missing feedback key: send [serve] feedback_api_key in the {FEEDBACK_KEY_HEADER} "
            "header (or Authorization: Bearer KEY)",
        )
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        raise ApiError(403, f"wrong feedback key in the {FEEDBACK_KEY_HEADER} header")
    return key_id(expected)


def _feedback_item(body: object) -> schemas.FeedbackRequest:
    """The validated feedback body; 422 naming each broken rule."""
    try:
        item = schemas.FeedbackRequest.model_validate(body)
    except ValidationError as exc:
        errors = [
            schema.Violation(1, ".".join(map(str, e["loc"])) or "(body)", e.get("input"), _msg(e))
            for e in exc.errors(include_url=False)
        ]
        raise ApiError(422, f"invalid feedback: {errors[0]}", errors) from None
    now = datetime.now(UTC)
    if item.observed_at is not None and item.observed_at > now + timedelta(
        seconds=CLOCK_SKEW_SECONDS
    ):
        violation = schema.Violation(
            1,
            OBSERVED_FIELD,
            item.observed_at.isoformat(),
            f"is in the future (now is {now.isoformat(timespec='seconds')})",
        )
        raise ApiError(422, f"invalid feedback: {violation}", [violation])
    return item


def _msg(error: Any) -> str:
    """Pydantic's message, without its "Value error, " prefix for our own rules."""
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _before_application(item: schemas.FeedbackRequest, applied: datetime | None) -> ApiError:
    """The 422 for an outcome dated before its application."""
    assert item.observed_at is not None  # only a given date can be too early
    shown = applied.isoformat() if applied else "unknown"
    violation = schema.Violation(
        1, OBSERVED_FIELD, item.observed_at.isoformat(), f"is before the application ({shown})"
    )
    return ApiError(422, f"invalid feedback: {violation}", [violation])


async def _record(
    service: ScoringService, item: schemas.FeedbackRequest, source: str
) -> OutcomeResult:
    """Store the outcome, waiting (on the loop) only for a row that may still arrive."""
    request_id, outcome = item.request_id, item.outcome
    # Another worker or replica may have scored it and not flushed yet: it holds rows
    # up to its writer's max_delay, then flushes. Only an id issued that recently can
    # still arrive; any other unknown id is answered after one lookup.
    hold = max(1.0, service.writer.max_delay + 5 * service.config.flush_interval_seconds)
    now = time.time()
    issued = issued_at(request_id)
    recent = now - hold - CLOCK_SKEW_SECONDS <= issued <= now + CLOCK_SKEW_SECONDS
    give_up = min(issued + hold + CLOCK_SKEW_SECONDS, now + FEEDBACK_WAIT_SECONDS) if recent else 0
    pause = 0.02
    while True:
        await _written_here(service, request_id)
        result = await _store_outcome(service, item, source)
        remaining = give_up - time.time()
        if result is not OutcomeResult.UNKNOWN or remaining <= 0:
            break
        await asyncio.sleep(min(pause, remaining))
        pause = min(2 * pause, 0.25)
    if result is OutcomeResult.UNKNOWN:
        raise ApiError(404, f"no inference has request id {request_id}")
    if result is OutcomeResult.CONFLICT:
        raise ApiError(
            409,
            f"request {request_id} already has the outcome "
            f"{'bad' if outcome == 'good' else 'good'!r}; {outcome!r} would contradict it",
        )
    if result is OutcomeResult.DECLINED:
        raise ApiError(
            409,
            f"request {request_id} was declined (and not explored): no loan was granted, "
            "so it has no outcome",
        )
    if result is OutcomeResult.BEFORE_APPLICATION:
        applied = await anyio.to_thread.run_sync(
            service.store.application_time, request_id, limiter=service.feedback_limiter
        )
        raise _before_application(item, applied)
    return result


async def _written_here(service: ScoringService, request_id: str) -> None:
    """Wait, on the loop, until a row queued in this process's writer is stored; 503 if it stays."""
    writer = service.writer
    if not writer.is_pending(request_id):
        return
    writer.wait_written(request_id, 0.0)  # asks for a flush now; a 0 s wait never blocks
    deadline = time.monotonic() + FEEDBACK_WAIT_SECONDS
    pause = 0.002
    while writer.is_pending(request_id):
        if time.monotonic() >= deadline:
            raise ApiError(
                503, "the inference log is not writable right now; retry the feedback later"
            )
        await asyncio.sleep(pause)
        pause = min(2 * pause, 0.05)


async def _store_outcome(
    service: ScoringService, item: schemas.FeedbackRequest, source: str
) -> OutcomeResult:
    """One short lookup-and-update in a thread of the feedback's own limiter; 503 on failure."""
    store = service.store
    request_id = item.request_id

    def record() -> OutcomeResult:
        # a read first: an UPDATE takes the database's write lock even when it matches
        # no row (SQLite), which unknown ids would contend for with the log writer
        if not store.existing_ids([request_id]):
            return OutcomeResult.UNKNOWN
        return store.record_outcome(
            request_id, item.outcome, source=source, observed_at=item.observed_at
        )

    try:
        return await anyio.to_thread.run_sync(record, limiter=service.feedback_limiter)
    except (StoreError, SQLAlchemyError) as exc:
        detail = redact_text(str(exc).splitlines()[0][:300]) if str(exc) else type(exc).__name__
        raise ApiError(503, f"the inference log is not writable right now: {detail}") from None
