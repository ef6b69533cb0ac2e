"""The one route to the MLflow store: a typed ``MlflowClient`` that knows its URI and experiment.

Every MLflow read and write of creditops goes through a :class:`TrackingClient`
that a stage receives, built once by :func:`connect`. Nothing sets MLflow's
process-wide tracking URI behind a caller's back: the few MLflow calls that
exist only in its fluent API (logging and loading an sklearn model) run inside
:meth:`TrackingClient.fluent`, which points MLflow at this client's store for
the call and restores what was there before.

The registry (versions, aliases, the gate) builds on this client; training
logs its runs and registers its finalists through it. Every version it
registers is tagged with the SHA-256 of its model files
(:mod:`creditops.integrity`), which each stage checks before unpickling them.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.tracking import MlflowClient

from creditops.config import MlflowConfig
from creditops.errors import RegistryError, TrackingError, first_line
from creditops.integrity import MODEL_DIGEST_TAG, folder_digest
from creditops.secrets import redact_url

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

TRAIN_DATA_ARTIFACT = "data/train.csv"
TEST_DATA_ARTIFACT = "data/test.csv"

_URI = re.compile(
    r"^(sqlite:///.+|postgresql(\+\w+)?://.+|mysql(\+\w+)?://.+|https?://[^/\s]+.*|file:.+|databricks.*)$"
)


class TrackingClient(MlflowClient):
    """An ``MlflowClient`` bound to one store and one experiment.

    Attributes:
        uri: the tracking (and registry) URI.
        experiment_id: the configured experiment's id (created by :func:`connect`).
        require_model_digest: refuse to load a version without a ``model_sha256``
            tag (``[mlflow] require_model_digest``; see :mod:`creditops.integrity`).
    """

    def __init__(
        self, uri: str, experiment_id: str = "", *, require_model_digest: bool = True
    ) -> None:
        super().__init__(tracking_uri=uri, registry_uri=uri)
        self.uri = uri
        self.experiment_id = experiment_id
        self.require_model_digest = require_model_digest

    @contextmanager
    def fluent(self, run_id: str | None = None) -> Iterator[None]:
        """MLflow's fluent API pointed at this store for a block (and ``run_id`` active).

        The process-wide URIs are put back as they were when the block ends.
        """
        import mlflow
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        # set_tracking_uri / set_registry_uri also export MLFLOW_TRACKING_URI and
        # MLFLOW_REGISTRY_URI, which MLflow's own default clients read: put both back too
        names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
        saved = (tracking_utils._tracking_uri, registry_utils._registry_uri)
        saved_env = {name: os.environ.get(name) for name in names}
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        try:
            if run_id is None:
                yield
            else:
                with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
                    yield
        finally:
            tracking_utils._tracking_uri, registry_utils._registry_uri = saved
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    @contextmanager
    def run(
        self,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        parent_id: str | None = None,
    ) -> Iterator[str]:
        """A run of this experiment for a block: yields its id; FINISHED, or FAILED on error."""
        all_tags = dict(tags or {})
        if parent_id:
            all_tags["mlflow.parentRunId"] = parent_id
        run = self.create_run(self.experiment_id, run_name=name, tags=all_tags)
        run_id = run.info.run_id
        try:
            yield run_id
        except BaseException:
            self.set_terminated(run_id, "FAILED")
            raise
        self.set_terminated(run_id, "FINISHED")

    def log_values(
        self,
        run_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Parameters, metrics and tags of a run in one request."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        self.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, str(v)) for k, v in (params or {}).items()],
            tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
        )

    def log_sklearn_model(self, run_id: str, pipeline: Pipeline, **options: Any) -> str:
        """Log a fitted sklearn pipeline as the run's model; returns its model URI."""
        import mlflow.sklearn

        with self.fluent(run_id):
            info = mlflow.sklearn.log_model(pipeline, name="model", **options)
        return str(info.model_uri)

    def download_model(self, model_uri: str, folder: Path) -> Path:
        """Download the model artifact behind ``model_uri`` into ``folder``; returns its path."""
        import mlflow.artifacts

        with self.fluent():
            path = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(folder))
        return Path(path)

    def model_digest(self, model_uri: str) -> str:
        """The SHA-256 of the files the store holds for ``model_uri`` (see :mod:`creditops.integrity`)."""
        with tempfile.TemporaryDirectory(prefix="creditops-digest-") as tmp:
            return folder_digest(self.download_model(model_uri, Path(tmp)))

    def load_sklearn_model(self, model_uri: str) -> Pipeline:
        """The fitted pipeline behind ``model_uri`` (``models:/NAME/VERSION``, ``runs:/...``).

        Unverified: the stages load registered versions through
        :func:`creditops.registry.load_pipeline`, which checks the artifact's digest first.
        """
        import mlflow.sklearn

        with self.fluent():
            pipeline: Pipeline = mlflow.sklearn.load_model(model_uri)
        return pipeline

    def register_version(
        self, name: str, model_uri: str, run_id: str, tags: Mapping[str, str]
    ) -> int:
        """Register a logged model as a new version of ``name`` (created if absent).

        The version is tagged with the SHA-256 of the model's files
        (``model_sha256``): the one in ``tags``, else computed from the files the
        store holds for ``model_uri`` (downloaded for it).

        Raises:
            RegistryError: the registry refused it, or the model cannot be downloaded.
        """
        from mlflow.exceptions import MlflowException

        all_tags = dict(tags)
        try:
            if MODEL_DIGEST_TAG not in all_tags:
                all_tags[MODEL_DIGEST_TAG] = self.model_digest(model_uri)
            try:
                self.get_registered_model(name)
            except MlflowException:
                self.create_registered_model(name, description="creditops credit-risk scorer")
            # a tracking server accepts a models:/<model_id> source only with its model_id
            logged = re.fullmatch(r"models:/(m-[0-9a-f]+)", model_uri)
            # MLflow resolves a models:/m-... source through its default client: scope it here
            with self.fluent():
                version = self.create_model_version(
                    name,
                    model_uri,
                    run_id=run_id,
                    tags=all_tags,
                    model_id=logged.group(1) if logged else None,
                )
        except MlflowException as exc:
            raise RegistryError(
                f"cannot register {model_uri} as {name!r}: {first_line(exc)}"
            ) from exc
        except OSError as exc:  # the download for the digest: a full disk, say
            raise RegistryError(
                f"cannot register {model_uri} as {name!r}: reading its files failed: {exc}"
            ) from exc
        return int(version.version)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` of ``name`` at ``version``.

        Raises:
            RegistryError: the registry refused it.
        """
        try:
            self.set_registered_model_alias(name, alias, str(version))
        except Exception as exc:
            raise RegistryError(
                f"cannot set alias {alias!r} of {name!r} to version {version}: {first_line(exc)}"
            ) from exc
        log.info("alias %s of %s -> version %s", alias, name, version)


def connect(config: MlflowConfig) -> TrackingClient:
    """A client of the configured store, checked to answer, with its experiment.

    Creates the experiment (with the configured artifact location) if absent.

    Raises:
        TrackingError: the URI is malformed or the store does not answer.
    """
    uri = config.tracking_uri
    if not _URI.match(uri):
        raise TrackingError(
            f"tracking URI {redact_url(uri)!r} is malformed: expected sqlite:///PATH, postgresql://..., "
            "http(s)://HOST:PORT or file:PATH"
        )
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if uri.startswith("http"):
        os.environ.setdefault(
            "MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(config.request_timeout_seconds))
        )
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        if redact_url(uri) != uri:
            # MLflow prints "View run ... at: <tracking URI>/#/..." as each run ends: the
            # URI's password with it
            os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if uri.startswith("sqlite:///"):
        # MLflow caches one store per URI string for the process: a relative path would
        # keep pointing at the first working directory's database after a chdir
        path = Path(uri.removeprefix("sqlite:///")).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{path}"
    # the store's schema set-up chatter is not the user's business
    for noisy in ("mlflow.store.db.utils", "alembic", "mlflow.tracking._tracking_service.client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    client = TrackingClient(uri, require_model_digest=config.require_model_digest)
    try:
        experiment = client.get_experiment_by_name(config.experiment)
        if experiment is not None:
            client.experiment_id = experiment.experiment_id
        else:
            location: str | None = config.artifact_location
            if not location:
                location = None  # a tracking server stores them (its --artifacts-destination)
            elif "://" not in location:
                location = Path(location).resolve().as_uri()
            client.experiment_id = client.create_experiment(
                config.experiment, artifact_location=location
            )
    except Exception as exc:  # MLflow raises many types; all mean the store is unusable
        raise TrackingError(
            f"MLflow tracking store {redact_url(uri)} is unusable: {first_line(exc)}"
        ) from exc
    return client
