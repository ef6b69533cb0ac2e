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
import threading
import time
import uuid

_TIME_DIGITS = 12  # 48 bits of milliseconds: good until the year 10889
_RANDOM_BYTES = 10
# random bytes read from the system at a time: about 6,500 ids
_POOL_BYTES = 64 * 1024
_pool = bytearray()
_pool_lock = threading.Lock()


def random_bytes(count: int) -> bytes:
    """``count`` bytes of the system's CSPRNG (``os.urandom``), each handed out once.

    They are read ``_POOL_BYTES`` at a time: ``os.urandom`` is a system call
    that releases the interpreter lock, and the scoring thread would otherwise
    make one for every batch. A forked child forgets the parent's pool, so two
    workers never hand out the same bytes.
    """
    with _pool_lock:
        if len(_pool) < count:
            _pool[:] = os.urandom(max(_POOL_BYTES, count))
        out = bytes(_pool[len(_pool) - count :])
        del _pool[len(_pool) - count :]
    return out


def _forget_pool() -> None:
    global _pool_lock
    _pool_lock = threading.Lock()  # the parent's may have been held by another thread
    _pool.clear()


os.register_at_fork(after_in_child=_forget_pool)


def new_batch_id() -> str:
    """A random (version 4) UUID's 32 hex digits, from :func:`random_bytes`."""
    return uuid.UUID(bytes=random_bytes(16), version=4).hex


def new_request_ids(count: int, now: float | None = None) -> list[str]:
    """``count`` fresh request ids issued at ``now`` (seconds since the epoch; default: now)."""
    issued = int((time.time() if now is None else now) * 1000)
    prefix = f"{issued:0{_TIME_DIGITS}x}"
    step = 2 * _RANDOM_BYTES
    tails = random_bytes(_RANDOM_BYTES * count).hex()
    return [prefix + tails[i : i + step] for i in range(0, step * count, step)]


def issued_at(request_id: str) -> float:
    """When ``request_id`` says it was issued, in seconds since the epoch.

    Any 32-hex-digit string has a value here; only ids this service issued
    have a true one (the caller treats the value as a claim to check).
    """
    return int(request_id[:_TIME_DIGITS], 16) / 1000.0
