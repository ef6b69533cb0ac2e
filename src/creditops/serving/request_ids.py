"""Request ids: 32 hex digits, the first 12 the time the id was issued (ms since the epoch).

``POST /feedback`` must tell a row another worker still holds in memory (it
will be stored within that worker's longest hold) from an id nobody issued.
Random ids alone cannot tell them apart, so every unknown id used to be looked
for again for a second. With the issue time in front (as in UUIDv7), an
unknown id issued longer ago than the longest hold, or in the future, is
answered 404 at once; the 80 random bits behind it keep ids unique.
"""

from __future__ import annotations

import os
import time

_TIME_DIGITS = 12  # 48 bits of milliseconds: good until the year 10889
_RANDOM_BYTES = 10


def new_request_ids(count: int, now: float | None = None) -> list[str]:
    """``count`` fresh request ids issued at ``now`` (seconds since the epoch; default: now)."""
    issued = int((time.time() if now is None else now) * 1000)
    prefix = f"{issued:0{_TIME_DIGITS}x}"
    step = 2 * _RANDOM_BYTES
    tails = os.urandom(_RANDOM_BYTES * count).hex()
    return [prefix + tails[i : i + step] for i in range(0, step * count, step)]


def issued_at(request_id: str) -> float:
    """When ``request_id`` says it was issued, in seconds since the epoch.

    Any 32-hex-digit string has a value here; only ids this service issued
    have a true one (the caller treats the value as a claim to check).
    """
    return int(request_id[:_TIME_DIGITS], 16) / 1000.0
