"""Credit time on the scoring routes: application dates, outcome dates, the explore share.

An applicant may carry ``application_at`` (ISO-8601 date or datetime; a date is
00:00 UTC, a time without an offset is UTC); an outcome posted to
``POST /feedback`` may carry ``observed_at``. Both are parsed here, and an
application date is refused when it lies in the future or before ``[serve]
earliest_application_date``.

``[serve] explore_share`` grants a share of the applicants the model declines
anyway (lenders do it to keep learning about declines). Whether a row is
explored is drawn from its request id (:func:`explored_mask`): the verdict needs
no shared random state between worker threads or processes, and a request id
always gets the same one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator

from creditops import schema

APPLICATION_FIELD = "application_at"
OBSERVED_FIELD = "observed_at"
ISO_RULE = "is not an ISO-8601 date or datetime (e.g. 2024-03-15 or 2024-03-15T10:30:00Z)"
# explore draws are salted, so that they are not the request id's own random bits
_EXPLORE_SALT = b"creditops-explore"


def parse_moment(value: object) -> datetime:
    """An ISO-8601 date or datetime string as an aware UTC datetime.

    Raises:
        ValueError: not a string, or not ISO-8601 (the message is :data:`ISO_RULE`).
    """
    if isinstance(value, datetime):  # already parsed (Python callers)
        return as_utc(value)
    if not isinstance(value, str):  # numbers are not dates: no epoch guessing
        raise ValueError(ISO_RULE)
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise ValueError(ISO_RULE) from None


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC (a naive one is read as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


Moment = Annotated[datetime, BeforeValidator(parse_moment)]


def date_violations(
    rows: Sequence[dict[str, Any]], earliest: date, now: datetime | None = None
) -> list[schema.Violation]:
    """Every row whose ``application_at`` is in the future or before ``earliest``."""
    moment = now or datetime.now(UTC)
    first = datetime.combine(earliest, datetime.min.time(), UTC)
    out = []
    for i, row in enumerate(rows):
        applied = row.get(APPLICATION_FIELD)
        if applied is None:
            continue
        if applied > moment:
            rule = f"is in the future (now is {moment.isoformat(timespec='seconds')})"
        elif applied < first:
            rule = (
                f"is before the earliest application date {earliest.isoformat()} "
                "([serve] earliest_application_date)"
            )
        else:
            continue
        out.append(schema.Violation(i + 1, APPLICATION_FIELD, applied.isoformat(), rule))
    return out


def explored_mask(request_ids: Sequence[str], decline: np.ndarray, share: float) -> np.ndarray:
    """Which declined rows are granted anyway: each with probability ``share``, by its id."""
    explored = np.zeros(len(request_ids), dtype=bool)
    if share <= 0:
        return explored
    for i in np.flatnonzero(decline):
        digest = hashlib.blake2b(request_ids[int(i)].encode(), key=_EXPLORE_SALT, digest_size=8)
        explored[i] = int.from_bytes(digest.digest(), "big") / 2**64 < share
    return explored
