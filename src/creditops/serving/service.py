"""What outlives a request: the served champion, the inference log, the metrics.

:class:`ScoringService` holds the loaded champion (swapped whole, so a request
keeps the model it started with), the inference store and its background
writer, and the metrics of one server process. It polls the registry for a
new champion and reloads on demand (``POST /admin/reload``). MLflow is opened
lazily (:meth:`ScoringService._connect`): a prefetched start answers its first
request without importing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from creditops import registry
from creditops.config import MlflowConfig, ServeConfig
from creditops.errors import (
    CreditOpsError,
    NoChampionError,
    RegistryUnavailableError,
    TrackingError,
)
from creditops.inference.scorer import LoadedModel, prepare_model
from creditops.reason_codes import DEFAULT_PROTECTED
from creditops.serving.batcher import MicroBatcher
from creditops.serving.group_commit import GroupCommitWriter, RowsBuilder
from creditops.serving.journal import Journal, LogEvents
from creditops.serving.log_writer import InferenceLogWriter
from creditops.serving.metrics import ServiceMetrics
from creditops.serving.prefetch import Prefetch, PrefetchError, load_local_pipeline
from creditops.serving.shadow import ShadowScorer
from creditops.serving.store import InferenceStore

if TYPE_CHECKING:
    from creditops.tracking import TrackingClient

log = logging.getLogger(__name__)

NO_CHAMPION = "no champion: run `creditops promote`"
# A registry that is down or failing is not "no champion": promoting would not help.
REGISTRY_UNREACHABLE = "model registry unreachable"
# Imported while the prefetch helper works: what reading and unpickling the model needs.
_MODEL_MODULES = (
    "sklearn.ensemble",
    "sklearn.linear_model",
    "xgboost",
    "lightgbm",
    "cloudpickle",
    "yaml",
)
# The longest a scored row waits in memory while a big request is being scored.
LOG_MAX_DELAY_SECONDS = 1.0
# Worker threads that score requests (the event loop never does) and that look up
# feedback: separate limiters, so that a flood of feedback never delays scoring.
SCORING_THREADS = 16
FEEDBACK_THREADS = 4


class ScoringService:
    """The served model, the inference log and the metrics of one server process.

    Args:
        config: the ``[serve]`` section.
        mlflow: the ``[mlflow]`` section: where the champion is registered.
        store: replaces the configured inference store (tests).
        prefetch: a helper already fetching the champion (see ``prefetch``).
        gc_paused: the caller turned the cyclic GC off for start-up; :meth:`start`
            turns it back on once the champion is loaded (or found missing).
        protected: ``[fairness] protected``: never given as a reason.
    """

    def __init__(
        self,
        config: ServeConfig,
        mlflow: MlflowConfig,
        *,
        store: InferenceStore | None = None,
        prefetch: Prefetch | None = None,
        gc_paused: bool = False,
        protected: tuple[str, ...] = DEFAULT_PROTECTED,
    ) -> None:
        self.config = config
        self.protected = tuple(protected)
        self.mlflow = mlflow
        self.metrics = ServiceMetrics()
        self.acknowledged = config.durability == "acknowledged"
        self.store = store or InferenceStore(config.store_url, durable=self.acknowledged)
        self.journal = Journal(config.journal_dir)
        self.writer = self._log_writer()
        # Big requests in flight (read by the writer thread): the log waits for them.
        # Single rows do not hold it: a steady trickle of small writes keeps p99 low.
        self.big_requests = 0
        self.metrics.log_queue.set_function(lambda: self.writer.pending)
        self.metrics.journal_files.set_function(lambda: self.journal.files)
        self.model: LoadedModel | None = None
        self.not_ready_reason = "starting: the champion is not loaded yet"
        self._client: TrackingClient | None = None
        self._prefetch = prefetch
        self._gc_paused = gc_paused
        self._reload_lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self._warmer: asyncio.Task[None] | None = None
        self.scoring_limiter = anyio.CapacityLimiter(SCORING_THREADS)
        self.feedback_limiter = anyio.CapacityLimiter(FEEDBACK_THREADS)
        # the one thread that scores small requests, those queued together in one call
        self.batcher = MicroBatcher(name="scoring")
        # [serve] shadow: the challenger, scored after the champion's answer is sent
        self.shadow: ShadowScorer | None = (
            ShadowScorer(config.store_url, self.metrics, max_rows=config.shadow_queue_rows)
            if config.shadow
            else None
        )

    def _log_writer(self) -> InferenceLogWriter | GroupCommitWriter:
        """The inference log's writer for ``[serve] durability``."""
        metrics = self.metrics
        events = LogEvents(
            written=metrics.log_written.inc,
            failed=lambda _rows: metrics.log_failures.inc(),
            spilled=metrics.log_spilled.inc,
            lost=metrics.log_lost.inc,
        )
        if self.acknowledged:
            return GroupCommitWriter(
                self.store,
                self.journal,
                window=self.config.group_commit_seconds,
                max_rows=self.config.flush_max_rows,
                events=events,
            )
        return InferenceLogWriter(
            self.store,
            flush_interval=self.config.flush_interval_seconds,
            flush_max_rows=self.config.flush_max_rows,
            journal=self.journal,
            max_queue_rows=self.config.log_queue_max_rows,
            busy=lambda: self.big_requests > 0,
            max_delay=LOG_MAX_DELAY_SECONDS,
            events=events,
        )

    # --- life cycle ----------------------------------------------------------

    async def start(self) -> None:
        """Open the store, start the writer, load the champion, start polling."""
        await anyio.to_thread.run_sync(self.store.create)
        self.writer.start()
        self.batcher.start()
        try:
            await self.reload()
        finally:
            if self._gc_paused:
                # Started with the cyclic GC off: freeze what start-up built, without the
                # full collection (0.15-0.5 s before the first answer, for the <2,000
                # garbage objects start-up leaves), then turn the GC back on.
                gc.freeze()
                gc.enable()
                self._gc_paused = False
        await self.refresh_shadow()
        if self.config.poll_seconds > 0:
            self._poller = asyncio.create_task(self._poll(), name="champion-poller")
        if self._client is None:
            # The prefetched start skipped MLflow: import it and open the registry
            # now, once, rather than in the middle of traffic at the first poll.
            self._warmer = asyncio.create_task(self._warm_registry(), name="registry-warm-up")

    async def _warm_registry(self) -> None:
        try:
            await anyio.to_thread.run_sync(self._connect)
        except Exception as exc:  # MLflow raises many types; the poller retries anyway
            log.warning("model registry not reachable yet (%s); the poller will retry", exc)

    def _connect(self) -> TrackingClient:
        if self._client is None:
            self._client = registry.connect(self.mlflow)
        return self._client

    async def stop(self) -> None:
        """Stop polling, drain the inference log, close the store."""
        for task in (self._poller, self._warmer):
            if task is None:
                continue
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # a failed background task must not stop the drain
                log.exception("background task %s failed", task.get_name())
        await anyio.to_thread.run_sync(self.batcher.close)
        if self.shadow is not None:
            await anyio.to_thread.run_sync(self.shadow.close)
        await anyio.to_thread.run_sync(self.writer.close)
        self.store.close()
        log.info("inference log drained: %d row(s) written", self.writer.written_rows)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_seconds)
            try:
                await self.reload()
            except Exception:  # the poller must outlive any one failure
                log.exception("champion poll failed; serving on")
            await self.refresh_shadow()

    # --- the champion ----------------------------------------------------------

    async def reload(self) -> tuple[bool, str]:
        """Point the service at the current champion if it moved.

        Returns:
            Whether the served model changed, and why (or why not).
        """
        async with self._reload_lock:
            try:
                ref, loaded = await anyio.to_thread.run_sync(self._fetch_champion)
            except NoChampionError as exc:
                self.metrics.reloads.labels("no_champion").inc()
                if self.model is None:
                    self.not_ready_reason = f"{NO_CHAMPION} ({exc})"
                    return False, self.not_ready_reason
                log.warning("%s; still serving version %s", exc, self.model.ref.version)
                return False, f"{exc}; still serving version {self.model.ref.version}"
            except (RegistryUnavailableError, TrackingError) as exc:
                self.metrics.reloads.labels("error").inc()
                log.error("%s: %s", REGISTRY_UNREACHABLE, exc)
                if self.model is None:
                    self.not_ready_reason = f"{REGISTRY_UNREACHABLE}: {exc}"
                    return False, self.not_ready_reason
                return (
                    False,
                    f"{REGISTRY_UNREACHABLE} ({exc}); still serving {self.model.ref.version}",
                )
            except CreditOpsError as exc:
                self.metrics.reloads.labels("error").inc()
                log.error("cannot load the champion: %s", exc)
                if self.model is None:
                    self.not_ready_reason = f"cannot load the champion: {exc}"
                    return False, self.not_ready_reason
                return (
                    False,
                    f"cannot load the champion ({exc}); still serving {self.model.ref.version}",
                )
            if loaded is None:
                return False, f"version {ref.version} is already served"
            detail = self._swap(ref, loaded)
            if not self._gc_paused:  # else start() freezes the heap
                # in a thread: a collection is not the event loop's work
                await anyio.to_thread.run_sync(_freeze_heap)
            return True, detail

    def _swap(self, ref: registry.ModelRef, loaded: LoadedModel) -> str:
        """Serve ``loaded`` from now on; returns the line that says so."""
        previous = self.model
        self.model = loaded  # one assignment: requests in flight keep their own reference
        self.metrics.reloads.labels("swapped").inc()
        self.metrics.model_version.set(ref.version)
        self.metrics.model_info.clear()
        self.metrics.model_info.labels(
            ref.name,
            str(ref.version),
            ref.family,
            "compiled" if loaded.fast_path else "pipeline",
        ).set(1)
        detail = f"now serving {ref.name} version {ref.version}" + (
            f" (was {previous.ref.version})" if previous else ""
        )
        log.info("%s", detail)
        return detail

    def _fetch_champion(self) -> tuple[registry.ModelRef, LoadedModel | None]:
        started = time.perf_counter()
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None:
            try:
                return self._take_prefetched(prefetch, started)
            except PrefetchError as exc:
                log.warning("%s; loading the champion through MLflow", exc)
            finally:
                prefetch.cleanup()
        client = self._connect()
        ref = registry.resolve_alias(client, self.mlflow.registered_model)
        registry.require_servable(ref)  # before any download: no threshold, no serving
        current = self.model
        if current is not None and current.ref.version == ref.version:
            return ref, None
        pipeline = registry.load_pipeline(client, ref)
        return ref, prepare_model(ref, pipeline, started=started)

    def _take_prefetched(
        self, prefetch: Prefetch, started: float
    ) -> tuple[registry.ModelRef, LoadedModel | None]:
        # While the helper works, import what unpickling the model will need.
        for module in _MODEL_MODULES:
            if prefetch.process.poll() is not None:
                break
            with contextlib.suppress(ImportError):
                importlib.import_module(module)
        answer = prefetch.result()
        if "no_champion" in answer:
            raise NoChampionError(self.mlflow.registered_model)
        fields = {
            k: v for k, v in answer["ref"].items() if k in registry.ModelRef.__dataclass_fields__
        }
        fields["aliases"] = tuple(fields.get("aliases", ()))
        ref = registry.ModelRef(**fields)
        registry.require_servable(ref)
        # checked against the digest recorded at registration before it is unpickled
        pipeline = load_local_pipeline(
            Path(answer["path"]),
            model=ref.label,
            expected_sha256=ref.model_sha256,
            require_digest=self.mlflow.require_model_digest,
        )
        return ref, prepare_model(ref, pipeline, started=started)

    # --- the shadowed challenger --------------------------------------------------

    async def refresh_shadow(self) -> str:
        """Follow the ``challenger`` alias ([serve] shadow); never raises."""
        if self.shadow is None:
            return "shadow scoring is off"
        return await anyio.to_thread.run_sync(self.shadow.refresh, self._fetch_challenger)

    def _fetch_challenger(self, current: int | None) -> tuple[int, LoadedModel | None] | None:
        """The challenger to shadow: None when the alias is unset or names the champion."""
        client = self._connect()
        ref = registry.find_alias(client, self.mlflow.registered_model, registry.CHALLENGER)
        champion = self.model.ref.version if self.model is not None else None
        if ref is None or ref.version == champion:
            return None
        if ref.version == current:
            return ref.version, None
        registry.require_servable(ref)
        return ref.version, prepare_model(ref, registry.load_pipeline(client, ref))

    # --- inference log -------------------------------------------------------

    def log_rows(self, rows: list[dict[str, Any]]) -> None:
        """Queue scored rows for the inference log (never waits for the database)."""
        writer = self.writer
        assert isinstance(writer, InferenceLogWriter), "acknowledged requests use log_durably"
        writer.submit(rows)
        self.metrics.log_pending.set(writer.pending)

    async def log_durably(self, build: RowsBuilder) -> None:
        """Acknowledged durability: return once the rows ``build`` makes are durable.

        Raises:
            StoreError: they could be neither committed nor journaled.
        """
        writer = self.writer
        assert isinstance(writer, GroupCommitWriter), "async requests use log_rows"
        await writer.record(build)


def _freeze_heap() -> None:
    """Keep the long-lived heap (libraries, the model) out of the garbage collector's scans.

    A full collection over ~250,000 objects takes 100-250 ms on this machine, a
    pause every request in flight would wait for; frozen objects are still
    freed by reference counting when the model is replaced. It runs in a worker
    thread, never on the event loop; the collection still holds the GIL, but
    after the first freeze it scans only what came since (the new model).
    """
    gc.collect()
    gc.freeze()
