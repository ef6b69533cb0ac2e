"""The MLflow model registry, through aliases: ``challenger``, ``champion``, ``previous``.

Every finalist of a ``creditops train`` run becomes a version of one registered
model, tagged with its family, decision threshold, data hash, the training run
that holds its data, its test metrics and the SHA-256 of its model files
(checked before any load: :func:`download_model_files`). Promotion is a gate
(:func:`decide_promotion`, a pure function) applied to both models scored on
the same held-out rows; the decision is logged as its own MLflow run.
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from creditops import schema
from creditops.aliases import CHALLENGER as CHALLENGER
from creditops.aliases import CHAMPION as CHAMPION
from creditops.aliases import PREVIOUS as PREVIOUS
from creditops.config import MlflowConfig
from creditops.errors import (
    NoChampionError,
    NoTrainingDataError,
    RegistryError,
    RegistryUnavailableError,
    first_line,
)
from creditops.integrity import (
    MODEL_DIGEST_TAG,
    check_model_files,
    read_model_files,
    unpickle_model,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from sklearn.pipeline import Pipeline

    from creditops.tracking import TrackingClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelRef:
    """One registered model version and what creditops tagged it with."""

    name: str
    version: int
    run_id: str
    source: str
    family: str
    threshold: float
    data_hash: str
    train_run_id: str
    aliases: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    # SHA-256 of the model files at registration (creditops.integrity); empty if untagged
    model_sha256: str = ""

    @property
    def label(self) -> str:
        """How messages name this version: ``model credit-risk version 3``."""
        return f"model {self.name} version {self.version}"

    @property
    def model_uri(self) -> str:
        """The registry URI of this version: ``models:/NAME/VERSION``."""
        return f"models:/{self.name}/{self.version}"

    def as_dict(self) -> dict[str, Any]:
        """The reference as JSON-ready data, its model URI included."""
        out = asdict(self)
        out["aliases"] = list(self.aliases)
        out["model_uri"] = self.model_uri
        return out


def connect(config: MlflowConfig) -> TrackingClient:
    """A client of the configured MLflow store (see :func:`creditops.tracking.connect`).

    Raises:
        TrackingError: the URI is malformed or the store does not answer.
    """
    from creditops.tracking import connect as connect_store

    return connect_store(config)


def _ref(version: ModelVersion) -> ModelRef:
    """A :class:`ModelRef` out of a registry version and its creditops tags."""
    tags = dict(version.tags or {})
    metrics = {}
    for key, value in tags.items():
        if key.startswith(("test_", "cv_")):
            try:
                metrics[key] = float(value)
            except ValueError:
                continue
    try:
        # NaN when missing: such a version is listed, but refused for serving
        # (require_servable), never scored at a made-up threshold
        threshold = float(tags.get("threshold", "nan"))
    except ValueError:
        threshold = math.nan
    return ModelRef(
        name=version.name,
        version=int(version.version),
        run_id=version.run_id or "",
        source=version.source or "",
        family=tags.get("family", "unknown"),
        threshold=threshold,
        data_hash=tags.get("data_hash", ""),
        train_run_id=tags.get("train_run_id", version.run_id or ""),
        aliases=tuple(getattr(version, "aliases", []) or []),
        metrics=metrics,
        model_sha256=tags.get(MODEL_DIGEST_TAG, ""),
    )


def require_servable(ref: ModelRef) -> float:
    """The decision threshold ``ref`` is served at: its ``threshold`` tag.

    Raises:
        RegistryError: the tag is missing or not a number in (0, 1); serving
            it at a default would decide every applicant at a threshold no
            one chose.
    """
    if math.isnan(ref.threshold):
        raise RegistryError(
            f"model {ref.name} v{ref.version} has no usable threshold tag (missing or not a "
            "number): it is not served; register it with its decision threshold "
            "(tag threshold=0.xx) or promote another version"
        )
    if not 0.0 < ref.threshold < 1.0:
        raise RegistryError(
            f"model {ref.name} v{ref.version}: threshold tag {ref.threshold!r} is not in (0, 1): "
            "it is not served; register it with a threshold between 0 and 1"
        )
    return ref.threshold


def _is_not_found(exc: BaseException) -> bool:
    """Whether MLflow said "no such model / version / alias" (and not "I failed")."""
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException):
        return False
    if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
        return True
    # MLflow 3.17, SQLite and REST store alike, answers an unset alias of an existing
    # model with INVALID_PARAMETER_VALUE "Registered model alias champion not found."
    message = str(exc)
    return (
        exc.error_code == "INVALID_PARAMETER_VALUE"
        and "alias" in message
        and "not found" in message
    )


def _unavailable(what: str, exc: BaseException) -> RegistryUnavailableError:
    """The registry failed (refused, timed out, 5xx) while doing ``what``."""
    return RegistryUnavailableError(f"cannot {what}: {first_line(exc)}")


def get_version(client: TrackingClient, name: str, version: int) -> ModelRef:
    """The registered ``version`` of ``name``.

    Raises:
        RegistryError: no such version.
        RegistryUnavailableError: the registry did not answer or failed.
    """
    try:
        found = client.get_model_version(name, str(version))
    except Exception as exc:
        if _is_not_found(exc):
            raise RegistryError(
                f"model {name!r} has no version {version}: {first_line(exc)}"
            ) from exc
        raise _unavailable(f"read version {version} of {name!r}", exc) from exc
    return _ref(found)


def resolve_alias(client: TrackingClient, name: str, alias: str = CHAMPION) -> ModelRef:
    """The version that ``alias`` points at.

    Only the registry's "not found" means the alias is unset; any other
    failure is :class:`RegistryUnavailableError`, never "no champion".

    Raises:
        NoChampionError: for ``champion`` when no version holds it.
        RegistryError: for another alias that points nowhere.
        RegistryUnavailableError: the registry did not answer or failed.
    """
    try:
        version = client.get_model_version_by_alias(name, alias)
    except Exception as exc:
        if not _is_not_found(exc):
            raise _unavailable(f"read alias {alias!r} of {name!r}", exc) from exc
        if alias == CHAMPION:
            raise NoChampionError(name) from exc
        raise RegistryError(f"model {name!r} has no version with alias {alias!r}") from exc
    return _ref(version)


def find_alias(client: TrackingClient, name: str, alias: str) -> ModelRef | None:
    """Like :func:`resolve_alias`, but ``None`` when the alias is unset.

    Raises:
        RegistryUnavailableError: the registry did not answer or failed.
    """
    try:
        return resolve_alias(client, name, alias)
    except RegistryUnavailableError:
        raise
    except RegistryError:
        return None


def list_versions(client: TrackingClient, name: str) -> list[ModelRef]:
    """Every version of ``name``, newest first (empty if the model is unknown)."""
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except Exception as exc:
        raise _unavailable(f"list versions of {name!r}", exc) from exc
    refs = []
    for v in versions:
        # search results may omit aliases: read each version in full
        refs.append(get_version(client, name, int(v.version)))
    return sorted(refs, key=lambda r: r.version, reverse=True)


def register_version(
    client: TrackingClient, name: str, model_uri: str, run_id: str, tags: dict[str, str]
) -> ModelRef:
    """Register a logged model as a new version of ``name`` with ``tags``."""
    return get_version(client, name, client.register_version(name, model_uri, run_id, tags))


def register_fitted(
    client: TrackingClient,
    name: str,
    pipeline: Pipeline,
    *,
    family: str,
    threshold: float,
    data_hash: str,
    run_name: str,
    extra_tags: dict[str, str] | None = None,
) -> ModelRef:
    """Log an already fitted pipeline in a run of its own and register it.

    For models fitted outside ``creditops train`` (benchmarks, imports); the
    version's ``train_run_id`` is that run, which holds no training data.
    """
    import mlflow.sklearn

    with client.run(run_name) as run_id:
        model_uri = client.log_sklearn_model(
            run_id,
            pipeline,
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        )
    tags = {
        "family": family,
        "threshold": repr(float(threshold)),
        "data_hash": data_hash,
        "train_run_id": run_id,
        **(extra_tags or {}),
    }
    return register_version(client, name, model_uri, run_id, tags)


def set_alias(client: TrackingClient, name: str, alias: str, version: int) -> None:
    """Point ``alias`` at ``version``."""
    client.set_alias(name, alias, version)


def download_model_files(client: TrackingClient, ref: ModelRef) -> dict[str, bytes]:
    """The files of ``ref``'s model artifact, checked against its ``model_sha256`` tag.

    Raises:
        ModelIntegrityError: the files are not the ones registered (or the
            version has no digest and ``[mlflow] require_model_digest`` is on).
        RegistryError: the model cannot be downloaded.
    """
    with tempfile.TemporaryDirectory(prefix="creditops-model-") as tmp:
        try:
            folder = client.download_model(ref.model_uri, Path(tmp))
        except Exception as exc:
            raise RegistryError(f"cannot download {ref.model_uri}: {first_line(exc)}") from exc
        files = read_model_files(folder)
    check_model_files(files, ref.model_sha256, model=ref.label, require=client.require_model_digest)
    return files


def load_pipeline(client: TrackingClient, ref: ModelRef) -> Pipeline:
    """The fitted sklearn pipeline of ``ref``: downloaded, checked, then unpickled.

    Nothing is unpickled before the files match the digest recorded at
    registration (:func:`download_model_files`).

    Raises:
        ModelIntegrityError: the files are not the ones registered.
        RegistryError: the model cannot be downloaded or loaded.
    """
    return pipeline_from_files(client, ref, download_model_files(client, ref))


def pipeline_from_files(client: TrackingClient, ref: ModelRef, files: dict[str, bytes]) -> Pipeline:
    """The pipeline in ``ref``'s checked artifact files (:func:`download_model_files`).

    Raises:
        RegistryError: the model cannot be loaded.
    """
    try:
        return unpickle_model(files)
    except RegistryError:  # not a plain (cloud)pickle: shipped code, skops
        return _load_with_mlflow(client, files)
    except Exception as exc:
        raise RegistryError(f"cannot load {ref.model_uri}: {first_line(exc)}") from exc


def _load_with_mlflow(client: TrackingClient, files: dict[str, bytes]) -> Pipeline:
    """MLflow's own loader over checked files, written to a private folder."""
    with tempfile.TemporaryDirectory(prefix="creditops-model-") as tmp:
        for name, data in files.items():
            target = Path(tmp) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        try:
            return client.load_sklearn_model(tmp)
        except Exception as exc:
            raise RegistryError(f"cannot load the model: {first_line(exc)}") from exc


def load_training_frames(
    client: TrackingClient, ref: ModelRef
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The exact train and test rows ``ref`` was fitted and reported on.

    Raises:
        NoTrainingDataError: the training run or its data artifacts are not
            there (a version registered by :func:`register_fitted` has none).
        RegistryUnavailableError: the store failed while reading them.
        RegistryError: the train data's hash no longer matches the version's
            ``data_hash`` tag.
    """
    from creditops.data import frame_hash
    from creditops.tracking import TEST_DATA_ARTIFACT, TRAIN_DATA_ARTIFACT

    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for artifact in (TRAIN_DATA_ARTIFACT, TEST_DATA_ARTIFACT):
            try:
                path = client.download_artifacts(ref.train_run_id, artifact, tmp)
            except Exception as exc:
                if _is_not_found(exc) or isinstance(exc, FileNotFoundError):
                    raise NoTrainingDataError(
                        f"model {ref.name} v{ref.version}: training data {artifact} of run "
                        f"{ref.train_run_id} not found: {first_line(exc)}"
                    ) from exc
                raise _unavailable(
                    f"read training data {artifact} of model {ref.name} v{ref.version}", exc
                ) from exc
            raw = pd.read_csv(path)
            frames.append(pd.concat([schema.coerce_features(raw), raw[[schema.TARGET]]], axis=1))
    train, test = frames
    if ref.data_hash and frame_hash(train) != ref.data_hash:
        raise RegistryError(
            f"model {ref.name} v{ref.version}: reference data hash {frame_hash(train)[:12]} "
            f"does not match the version's data_hash {ref.data_hash[:12]}"
        )
    return train, test
