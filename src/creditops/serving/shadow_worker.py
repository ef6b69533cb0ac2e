"""The shadow scorer's own process: the challenger scores and logs there, not in the service.

The service process runs the request path on one interpreter lock (GIL). A
challenger scored in a thread of that process, and its rows written there,
take that lock in many short stretches, and every stretch is one a champion
answer may wait for: in ``bench/serve.py --shadow`` that cost the champion's
p99 several milliseconds. In a process of its own the challenger shares only
the cores, which the operating system hands out by priority (this process runs
at nice 10), not the lock.

Messages in (one :mod:`multiprocessing` queue, in order):

* ``("model", version, payload)``: ``payload`` pickles ``(ModelRef, registered
  model)``; prepared here (:func:`~creditops.inference.scorer.prepare_model`),
  it scores the jobs that follow;
* ``("none",)``: no challenger (the alias is gone); jobs are dropped;
* ``("job", raw, request_ids, champion_approved)``: rows the champion answered;
* ``None``: score and write what is queued, then exit.

Messages out: ``("loaded", version, seconds)``, ``("error", stage, version,
rows, message)`` (stage ``load``, ``score`` or ``log``), ``("scored", version,
rows, agreed)``, and ``("closed", written, failed, dropped)`` last.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import signal
import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from multiprocessing.queues import Queue

    from creditops.inference.scorer import LoadedModel

# the service sends the rows of 50 ms as one message; what is queued is scored together
BATCH_ROWS = 8_192
NICE = 10


def run(store_url: str, inbox: Queue[Any], outbox: Queue[Any], max_rows: int) -> None:
    """The process's main loop (the target of the service's shadow process)."""
    from creditops.serving.shadow_log import ShadowWriter

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service stops it through its queue
    with contextlib.suppress(OSError, AttributeError):
        os.nice(NICE)
    parent = os.getppid()
    writer = ShadowWriter(
        store_url,
        max_rows=max_rows,
        on_failure=lambda rows: outbox.put(("error", "log", 0, rows, "shadow rows not written")),
    )
    model: LoadedModel | None = None
    stopping = False
    while not stopping:
        try:
            first = inbox.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:  # the service is gone without closing us
                break
            continue
        items, stopping = _gather(inbox, first)
        jobs: list[tuple[Any, ...]] = []
        for item in items:
            if item[0] == "job":
                jobs.append(item)
                continue
            _score(model, jobs, writer, outbox)  # the rows before a model change: the old model
            jobs = []
            model = _load(item, outbox)
        _score(model, jobs, writer, outbox)
    writer.close()
    outbox.put(("closed", writer.written, writer.failed, writer.dropped))


def _gather(inbox: Queue[Any], first: Any) -> tuple[list[Any], bool]:
    """``first`` and what is queued behind it (up to ``BATCH_ROWS`` rows)."""
    if first is None:
        return [], True
    items, rows = [first], len(first[2]) if first[0] == "job" else 0
    while rows < BATCH_ROWS:
        try:
            item = inbox.get_nowait()
        except queue.Empty:
            break
        if item is None:
            return items, True
        items.append(item)
        rows += len(item[2]) if item[0] == "job" else 0
    return items, False


def _load(message: tuple[Any, ...], outbox: Queue[Any]) -> LoadedModel | None:
    from creditops.inference.scorer import prepare_model

    if message[0] != "model":
        return None
    version = int(message[1])
    started = time.perf_counter()
    try:
        ref, registered = pickle.loads(message[2])
        loaded = prepare_model(ref, registered)
    except Exception as exc:  # a challenger that cannot be prepared: nothing is shadowed
        outbox.put(("error", "load", version, 0, f"{type(exc).__name__}: {exc}"))
        return None
    outbox.put(("loaded", version, time.perf_counter() - started))
    return loaded


def _score(
    model: LoadedModel | None, jobs: list[tuple[Any, ...]], writer: Any, outbox: Queue[Any]
) -> None:
    from creditops.serving.shadow_log import ShadowBatch

    if model is None or not jobs:
        return
    raw = np.concatenate([j[1] for j in jobs])
    request_ids = [i for j in jobs for i in j[2]]
    champion_approved = np.concatenate([j[3] for j in jobs])
    version = model.ref.version
    try:
        probability = np.asarray(model.score(raw, reasons=False).probability, dtype=float)
    except Exception as exc:  # a broken challenger never reaches a champion answer
        outbox.put(("error", "score", version, len(request_ids), f"{type(exc).__name__}: {exc}"))
        return
    threshold = float(model.ref.threshold)
    agreed = int(np.sum((probability < threshold) == champion_approved))
    writer.submit(ShadowBatch(request_ids, model.ref.name, version, probability, threshold))
    outbox.put(("scored", version, len(request_ids), agreed))
