"""Where the chunks are scored: this process, or a Dask distributed cluster, behind one interface.

An :class:`Engine` maps the unit of work, :func:`creditops.batch.chunks.score_chunk`
(validate a chunk, score its valid rows with the compiled scorer, describe the
others' broken rules), over the input's numbered chunks and yields the results
in input order, so the output files are the same whichever engine ran, row for
row. :func:`open_engine` picks one from an address: empty for
:class:`LocalEngine` (this process, its threads), a scheduler address or
``local`` / ``local:N`` for :class:`DaskEngine` (``creditops score ... --dask
ADDRESS``).

On Dask this process still reads the input and writes the results; the
scoring, the costly part (above all the reasons' contributions), runs on the
workers. The model's artifact files, checked here against the SHA-256
recorded at registration, are sent to every worker once
(``Client.scatter(..., broadcast=True)``); each worker process checks them
again before it unpickles them (:mod:`creditops.integrity`), then compiles and
checks the model on its first chunk and keeps it for the next ones
(:data:`MODEL_LOADS` counts the compilations in a process). Workers need creditops installed, not
access to the MLflow store. At most ``2 x`` the cluster's threads chunks are in
flight, so this process holds a bounded number of chunks whatever the file's size.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

from creditops.batch.chunks import ChunkResult, NumberedChunk, ReasonPolicy, score_chunk
from creditops.errors import BatchEngineError, CreditOpsError

if TYPE_CHECKING:
    from creditops.inference.scorer import LoadedModel
    from creditops.registry import ModelRef
    from distributed import Client, Future

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10.0

_MODELS: dict[str, LoadedModel] = {}
_LOCK = threading.Lock()
MODEL_LOADS = 0
"""Compiled models prepared in this process (read on each worker by the tests)."""


class Engine(Protocol):
    """Scores numbered chunks with one model; the results come back in input order."""

    def score(
        self,
        model: LoadedModel,
        chunks: Iterable[NumberedChunk],
        *,
        reasons: ReasonPolicy,
        artifact: Mapping[str, bytes],
    ) -> Iterator[ChunkResult]:
        """:func:`~creditops.batch.chunks.score_chunk` of each chunk, in the chunks' order.

        ``artifact`` is the model's checked files
        (:func:`creditops.registry.download_model_files`): what a remote worker unpickles.
        """
        ...


class LocalEngine:
    """Scores the chunks in this process, each on ``threads`` threads, two chunks at a time.

    While one chunk's rows are scored, the next one is validated and turned
    into the raw matrix (single-threaded pandas work), and this process reads
    the input and writes the finished chunk: without that overlap, a core sat
    idle for about a third of a run. At most ``AHEAD + 1`` chunks are held.
    """

    AHEAD = 1

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def score(
        self,
        model: LoadedModel,
        chunks: Iterable[NumberedChunk],
        *,
        reasons: ReasonPolicy,
        artifact: Mapping[str, bytes],
    ) -> Iterator[ChunkResult]:
        """Each chunk scored with ``model`` as it is read (already loaded: ``artifact`` unused)."""
        import concurrent.futures as cf

        pending: deque[cf.Future[ChunkResult]] = deque()
        pool = cf.ThreadPoolExecutor(max_workers=self.AHEAD + 1, thread_name_prefix="score-chunk")
        try:
            for chunk in chunks:
                pending.append(
                    pool.submit(score_chunk, model, chunk, reasons=reasons, threads=self.threads)
                )
                if len(pending) > self.AHEAD:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # a failed read or write: the chunks not started are dropped
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True)


@contextlib.contextmanager
def open_engine(address: str, threads: int) -> Iterator[Engine]:
    """The engine of ``address`` for one run: this process when empty, else a Dask cluster.

    Args:
        address: a Dask scheduler address, ``local`` / ``local:N`` for N local
            worker processes, or empty for this process.
        threads: the threads this process scores a chunk with (local engine only).

    Raises:
        BatchEngineError: the scheduler cannot be reached, or the local cluster
            cannot start.
    """
    if not address:
        yield LocalEngine(threads)
        return
    with DaskEngine.connect(address) as engine:
        yield engine


def model_loads() -> int:
    """How many models this process compiled for batch chunks."""
    return MODEL_LOADS


def _score_on_worker(
    model_key: str,
    ref: ModelRef,
    artifact: Mapping[str, bytes],
    chunk: NumberedChunk,
    reasons: ReasonPolicy,
) -> ChunkResult:
    """Runs on a worker: the chunk scored with this process's copy of the model.

    Raises:
        ModelIntegrityError: the files received are not the ones registered.
    """
    global MODEL_LOADS
    from creditops.inference.scorer import prepare_model
    from creditops.integrity import check_model_files, unpickle_model

    with _LOCK:
        model = _MODELS.get(model_key)
        if model is None:
            # checked before unpickling, here too: a worker trusts the registry's
            # digest, not the bytes it was sent (an untagged version got past the
            # client only if [mlflow] require_model_digest is off)
            check_model_files(artifact, ref.model_sha256, model=ref.label, require=False)
            model = prepare_model(ref, unpickle_model(artifact))
            _MODELS.clear()  # one model at a time per worker
            _MODELS[model_key] = model
            MODEL_LOADS += 1
    # the cluster's parallelism is its workers and their threads
    return score_chunk(model, chunk, reasons=reasons, threads=1)


def parse_local(address: str) -> int | None:
    """Worker processes of a ``local`` / ``local:N`` address; None for a scheduler address.

    Raises:
        BatchEngineError: ``local:`` followed by something other than a positive count.
    """
    if address != "local" and not address.startswith("local:"):
        return None
    count = address.partition(":")[2] or "2"
    if not count.isdigit() or int(count) < 1:
        raise BatchEngineError(
            f"Dask address {address!r}: expected local:N with N a number of workers >= 1"
        )
    return int(count)


class DaskEngine:
    """A connected Dask client that scores chunks in input order."""

    def __init__(self, client: Client, address: str) -> None:
        self.client = client
        self.address = address

    @classmethod
    @contextlib.contextmanager
    def connect(cls, address: str) -> Iterator[DaskEngine]:
        """Connect to the scheduler at ``address`` (or start a local cluster) for a run.

        Raises:
            BatchEngineError: the scheduler cannot be reached, or the local cluster
                cannot start.
        """
        from distributed import Client, LocalCluster

        workers = parse_local(address)
        with contextlib.ExitStack() as stack:
            try:
                if workers is not None:
                    cluster = stack.enter_context(
                        LocalCluster(  # type: ignore[no-untyped-call]
                            n_workers=workers,
                            processes=True,
                            threads_per_worker=1,
                            host="127.0.0.1",
                            dashboard_address="127.0.0.1:0",  # a free loopback port: no clash on 8787
                        )
                    )
                    client = stack.enter_context(Client(cluster))  # type: ignore[no-untyped-call]
                else:
                    client = stack.enter_context(
                        Client(address, timeout=CONNECT_TIMEOUT_SECONDS)  # type: ignore[no-untyped-call]
                    )
            except (OSError, TimeoutError, ValueError) as exc:
                raise BatchEngineError(
                    f"cannot reach the Dask scheduler at {address}: {exc}; "
                    "check [batch] dask_scheduler / --dask"
                ) from exc
            threads = sum(client.nthreads().values())
            log.info("Dask cluster at %s: %d thread(s)", address, threads)
            yield cls(client, address)

    def score(
        self,
        model: LoadedModel,
        chunks: Iterable[NumberedChunk],
        *,
        reasons: ReasonPolicy,
        artifact: Mapping[str, bytes],
    ) -> Iterator[ChunkResult]:
        """Score ``chunks`` on the cluster with ``model``, sent as its ``artifact``, in input order.

        Raises:
            BatchEngineError: the cluster has no worker, or a worker died.
        """
        client = self.client
        threads = sum(client.nthreads().values())  # type: ignore[no-untyped-call]
        if threads == 0:
            raise BatchEngineError(f"the Dask cluster at {self.address} has no worker")
        try:
            [shared] = client.scatter([dict(artifact)], broadcast=True)  # type: ignore[no-untyped-call]
            in_flight: deque[Future[ChunkResult]] = deque()
            for chunk in chunks:
                in_flight.append(
                    client.submit(
                        _score_on_worker, shared.key, model.ref, shared, chunk, reasons, pure=False
                    )
                )
                while len(in_flight) >= 2 * threads:
                    yield in_flight.popleft().result()
            while in_flight:
                yield in_flight.popleft().result()
        except CreditOpsError:
            raise
        except (OSError, TimeoutError) as exc:
            raise BatchEngineError(f"Dask cluster at {self.address} failed: {exc}") from exc
        except Exception as exc:
            from distributed import KilledWorker

            if isinstance(exc, KilledWorker):
                raise BatchEngineError(
                    f"Dask cluster at {self.address}: a worker died scoring a chunk ({exc})"
                ) from exc
            raise
