"""The MLflow model registry, through aliases: ``challenger``, ``champion``, ``previous``.

Every finalist of a ``creditops train`` run becomes a version of one registered
model, tagged with its family, decision threshold, data hash, the training run
that holds its data, and its test metrics. Promotion is a gate
(:func:`decide_promotion`, a pure function) applied to both models scored on
the same held-out rows; the decision is logged as its own MLflow run.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from creditops import schema
from creditops.aliases import CHALLENGER as CHALLENGER
from creditops.aliases import CHAMPION as CHAMPION
from creditops.aliases import PREVIOUS as PREVIOUS
from creditops.config import MlflowConfig
from creditops.errors import NoChampionError, RegistryError, first_line

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
        threshold = float(tags.get("threshold", "0.5"))
    except ValueError as exc:
        raise RegistryError(
            f"model {version.name} version {version.version}: bad threshold tag"
        ) from exc
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
    )


def get_version(client: TrackingClient, name: str, version: int) -> ModelRef:
    """The registered ``version`` of ``name``.

    Raises:
        RegistryError: no such version.
    """
    try:
        return _ref(client.get_model_version(name, str(version)))
    except RegistryError:
        raise
    except Exception as exc:
        raise RegistryError(f"model {name!r} has no version {version}: {first_line(exc)}") from exc


def resolve_alias(client: TrackingClient, name: str, alias: str = CHAMPION) -> ModelRef:
    """The version that ``alias`` points at.

    Raises:
        NoChampionError: for ``champion`` when no version holds it.
        RegistryError: for another alias that points nowhere.
    """
    try:
        version = client.get_model_version_by_alias(name, alias)
    except Exception as exc:
        if alias == CHAMPION:
            raise NoChampionError(name) from exc
        raise RegistryError(f"model {name!r} has no version with alias {alias!r}") from exc
    return _ref(version)


def find_alias(client: TrackingClient, name: str, alias: str) -> ModelRef | None:
    """Like :func:`resolve_alias`, but ``None`` when the alias is unset."""
    try:
        return resolve_alias(client, name, alias)
    except RegistryError:
        return None


def list_versions(client: TrackingClient, name: str) -> list[ModelRef]:
    """Every version of ``name``, newest first (empty if the model is unknown)."""
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except Exception as exc:
        raise RegistryError(f"cannot list versions of {name!r}: {first_line(exc)}") from exc
    refs = []
    for v in versions:
        # search results may omit aliases: read each version in full
        refs.append(_ref(client.get_model_version(name, v.version)))
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


def load_pipeline(client: TrackingClient, ref: ModelRef) -> Pipeline:
    """The fitted sklearn pipeline of ``ref`` (downloaded from the store).

    Raises:
        RegistryError: the model cannot be loaded.
    """
    try:
        pipeline: Pipeline = client.load_sklearn_model(ref.model_uri)
    except Exception as exc:
        raise RegistryError(f"cannot load {ref.model_uri}: {first_line(exc)}") from exc
    return pipeline


def load_training_frames(
    client: TrackingClient, ref: ModelRef
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The exact train and test rows ``ref`` was fitted and reported on.

    Raises:
        RegistryError: the training run or its data artifacts are gone, or the
            train data's hash no longer matches the version's ``data_hash`` tag.
    """
    from creditops.data import frame_hash
    from creditops.tracking import TEST_DATA_ARTIFACT, TRAIN_DATA_ARTIFACT

    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for artifact in (TRAIN_DATA_ARTIFACT, TEST_DATA_ARTIFACT):
            try:
                path = client.download_artifacts(ref.train_run_id, artifact, tmp)
            except Exception as exc:
                raise RegistryError(
                    f"model {ref.name} v{ref.version}: training data {artifact} of run "
                    f"{ref.train_run_id} not found: {first_line(exc)}"
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
