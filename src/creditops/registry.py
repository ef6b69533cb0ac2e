"""The MLflow model registry, through aliases: ``challenger``, ``champion``, ``previous``.

Every finalist of a ``creditops train`` run becomes a version of one registered
model, tagged with its family, decision threshold, data hash, the training run
that holds its data, and its test metrics. Promotion is a gate
(:func:`decide_promotion`, a pure function) applied to both models scored on
the same held-out rows; the decision is logged as its own MLflow run.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creditops import schema
from creditops.config import MlflowConfig, PromoteConfig
from creditops.errors import NoChampionError, RegistryError, TrackingError

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"
TRAIN_DATA_ARTIFACT = "data/train.csv"
TEST_DATA_ARTIFACT = "data/test.csv"

_URI = re.compile(
    r"^(sqlite:///.+|postgresql(\+\w+)?://.+|mysql(\+\w+)?://.+|https?://[^/\s]+.*|file:.+|databricks.*)$"
)


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
        return f"models:/{self.name}/{self.version}"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["aliases"] = list(self.aliases)
        out["model_uri"] = self.model_uri
        return out


def connect(config: MlflowConfig) -> Any:
    """Point MLflow at the configured store, make sure it answers, return a client.

    Also creates the experiment (with the configured artifact location) if absent.

    Raises:
        TrackingError: the URI is malformed or the store does not answer.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = config.tracking_uri
    if not _URI.match(uri):
        raise TrackingError(
            f"tracking URI {uri!r} is malformed: expected sqlite:///PATH, postgresql://..., "
            "http(s)://HOST:PORT or file:PATH"
        )
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if uri.startswith("http"):
        os.environ.setdefault(
            "MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(config.request_timeout_seconds))
        )
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # the store's schema set-up chatter is not the user's business
    for noisy in ("mlflow.store.db.utils", "alembic", "mlflow.tracking._tracking_service.client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        experiment = client.get_experiment_by_name(config.experiment)
        if experiment is None:
            location: str | None = config.artifact_location
            if not location:
                location = None  # a tracking server stores them (its --artifacts-destination)
            elif "://" not in location:
                location = Path(location).resolve().as_uri()
            client.create_experiment(config.experiment, artifact_location=location)
    except Exception as exc:  # MLflow raises many types; all mean the store is unusable
        raise TrackingError(f"MLflow tracking store {uri} is unusable: {_first_line(exc)}") from exc
    mlflow.set_experiment(config.experiment)
    return client


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _ref(client: Any, version: Any) -> ModelRef:
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


def get_version(client: Any, name: str, version: int) -> ModelRef:
    """The registered ``version`` of ``name``.

    Raises:
        RegistryError: no such version.
    """
    try:
        return _ref(client, client.get_model_version(name, str(version)))
    except RegistryError:
        raise
    except Exception as exc:
        raise RegistryError(f"model {name!r} has no version {version}: {_first_line(exc)}") from exc


def resolve_alias(client: Any, name: str, alias: str = CHAMPION) -> ModelRef:
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
    return _ref(client, version)


def find_alias(client: Any, name: str, alias: str) -> ModelRef | None:
    """Like :func:`resolve_alias`, but ``None`` when the alias is unset."""
    try:
        return resolve_alias(client, name, alias)
    except RegistryError:
        return None


def list_versions(client: Any, name: str) -> list[ModelRef]:
    """Every version of ``name``, newest first (empty if the model is unknown)."""
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except Exception as exc:
        raise RegistryError(f"cannot list versions of {name!r}: {_first_line(exc)}") from exc
    refs = []
    for v in versions:
        # search results may omit aliases: read each version in full
        refs.append(_ref(client, client.get_model_version(name, v.version)))
    return sorted(refs, key=lambda r: r.version, reverse=True)


def register_version(
    client: Any, name: str, model_uri: str, run_id: str, tags: dict[str, str]
) -> ModelRef:
    """Register a logged model as a new version of ``name`` with ``tags``."""
    from mlflow.exceptions import MlflowException

    try:
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name, description="creditops credit-risk scorer")
        # a tracking server accepts a models:/<model_id> source only with its model_id
        logged = re.fullmatch(r"models:/(m-[0-9a-f]+)", model_uri)
        version = client.create_model_version(
            name,
            model_uri,
            run_id=run_id,
            tags=tags,
            model_id=logged.group(1) if logged else None,
        )
    except MlflowException as exc:
        raise RegistryError(f"cannot register {model_uri} as {name!r}: {_first_line(exc)}") from exc
    return get_version(client, name, int(version.version))


def register_fitted(
    client: Any,
    name: str,
    pipeline: Any,
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
    import mlflow
    import mlflow.sklearn

    with mlflow.start_run(run_name=run_name) as run:
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        )
    tags = {
        "family": family,
        "threshold": repr(float(threshold)),
        "data_hash": data_hash,
        "train_run_id": run.info.run_id,
        **(extra_tags or {}),
    }
    return register_version(client, name, info.model_uri, run.info.run_id, tags)


def set_alias(client: Any, name: str, alias: str, version: int) -> None:
    """Point ``alias`` at ``version``."""
    try:
        client.set_registered_model_alias(name, alias, str(version))
    except Exception as exc:
        raise RegistryError(
            f"cannot set alias {alias!r} of {name!r} to version {version}: {_first_line(exc)}"
        ) from exc
    log.info("alias %s of %s -> version %s", alias, name, version)


def load_pipeline(ref: ModelRef) -> Any:
    """The fitted sklearn pipeline of ``ref`` (downloaded from the store)."""
    import mlflow.sklearn

    try:
        return mlflow.sklearn.load_model(ref.model_uri)
    except Exception as exc:
        raise RegistryError(f"cannot load {ref.model_uri}: {_first_line(exc)}") from exc


def load_training_frames(client: Any, ref: ModelRef) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The exact train and test rows ``ref`` was fitted and reported on.

    Raises:
        RegistryError: the training run or its data artifacts are gone, or the
            train data's hash no longer matches the version's ``data_hash`` tag.
    """
    from creditops.data import frame_hash

    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for artifact in (TRAIN_DATA_ARTIFACT, TEST_DATA_ARTIFACT):
            try:
                path = client.download_artifacts(ref.train_run_id, artifact, tmp)
            except Exception as exc:
                raise RegistryError(
                    f"model {ref.name} v{ref.version}: training data {artifact} of run "
                    f"{ref.train_run_id} not found: {_first_line(exc)}"
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


# --- the promotion gate -------------------------------------------------------


@dataclass(frozen=True)
class PromotionDecision:
    """The gate's verdict and the evidence behind it."""

    promoted: bool
    reason: str
    challenger_version: int
    challenger_auc: float
    champion_version: int | None
    champion_auc: float | None
    min_auc: float
    min_improvement: float
    holdout_rows: int
    holdout_hash: str
    run_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide_promotion(
    challenger_auc: float, champion_auc: float | None, config: PromoteConfig
) -> tuple[bool, str]:
    """The gate: pass the floor, and beat the champion by the margin.

    Returns:
        Whether to promote, and a sentence with the numbers behind it.
    """
    if not np.isfinite(challenger_auc):
        return False, "challenger ROC AUC is undefined on the holdout (one class only?)"
    if challenger_auc < config.min_auc:
        return (
            False,
            f"challenger ROC AUC {challenger_auc:.4f} is below the minimum {config.min_auc:.4f}",
        )
    if champion_auc is None:
        return (
            True,
            f"no champion yet; challenger ROC AUC {challenger_auc:.4f} >= minimum {config.min_auc:.4f}",
        )
    gain = challenger_auc - champion_auc
    if gain < config.min_improvement:
        return False, (
            f"challenger ROC AUC {challenger_auc:.4f} does not beat champion {champion_auc:.4f} "
            f"by the margin {config.min_improvement:.4f} (gain {gain:+.4f})"
        )
    return True, (
        f"challenger ROC AUC {challenger_auc:.4f} beats champion {champion_auc:.4f} "
        f"by {gain:+.4f} >= margin {config.min_improvement:.4f}"
    )


def score_auc(ref: ModelRef, holdout: pd.DataFrame) -> float:
    """ROC AUC of ``ref`` on labelled ``holdout`` rows (NaN with a single class)."""
    from creditops.data import label_vector
    from creditops.evaluate import roc_auc

    pipeline = load_pipeline(ref)
    proba = pipeline.predict_proba(schema.coerce_features(holdout))[:, 1]
    return roc_auc(label_vector(holdout[schema.TARGET]), proba)


def promote(
    client: Any,
    mlflow_config: MlflowConfig,
    promote_config: PromoteConfig,
    *,
    holdout: pd.DataFrame | None = None,
    challenger_version: int | None = None,
    context: str = "promote",
) -> PromotionDecision:
    """Apply the gate to the challenger and move the aliases if it passes.

    Both models are scored on the same held-out rows: ``holdout`` when given
    (the retraining loop passes recent labelled traffic), else the
    challenger's own test split. The decision, with both numbers, is logged to
    the console and as an MLflow run named ``promote``.

    Raises:
        RegistryError: there is no challenger, or a model cannot be loaded.
    """
    import mlflow

    from creditops.data import frame_hash

    name = mlflow_config.registered_model
    challenger = (
        get_version(client, name, challenger_version)
        if challenger_version is not None
        else resolve_alias(client, name, CHALLENGER)
    )
    champion = find_alias(client, name, CHAMPION)
    if holdout is None:
        _, holdout = load_training_frames(client, challenger)
    challenger_auc = score_auc(challenger, holdout)
    if champion is not None and champion.version == challenger.version:
        champion_auc: float | None = challenger_auc
        promoted, reason = False, f"version {challenger.version} is already the champion"
    else:
        champion_auc = score_auc(champion, holdout) if champion is not None else None
        promoted, reason = decide_promotion(challenger_auc, champion_auc, promote_config)
    with mlflow.start_run(run_name=context) as run:
        mlflow.set_tags(
            {
                "creditops.stage": "promote",
                "creditops.context": context,
                "verdict": "promoted" if promoted else "kept",
                "challenger_version": str(challenger.version),
                "champion_version": str(champion.version) if champion else "none",
            }
        )
        mlflow.log_params(
            {
                "min_auc": promote_config.min_auc,
                "min_improvement": promote_config.min_improvement,
                "holdout_rows": len(holdout),
                "holdout_hash": frame_hash(holdout)[:16],
            }
        )
        metrics = {"challenger_auc": challenger_auc}
        if champion_auc is not None:
            metrics["champion_auc"] = champion_auc
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        mlflow.log_text(reason, "decision.txt")
        run_id = run.info.run_id
    decision = PromotionDecision(
        promoted=promoted,
        reason=reason,
        challenger_version=challenger.version,
        challenger_auc=challenger_auc,
        champion_version=champion.version if champion else None,
        champion_auc=champion_auc,
        min_auc=promote_config.min_auc,
        min_improvement=promote_config.min_improvement,
        holdout_rows=len(holdout),
        holdout_hash=frame_hash(holdout),
        run_id=run_id,
    )
    if promoted:
        if champion is not None:
            set_alias(client, name, PREVIOUS, champion.version)
        set_alias(client, name, CHAMPION, challenger.version)
    log.info(
        "promotion %s: v%s (AUC %.4f) vs champion %s (AUC %s): %s",
        "PASSED" if promoted else "refused",
        challenger.version,
        challenger_auc,
        f"v{champion.version}" if champion else "none",
        f"{champion_auc:.4f}" if champion_auc is not None else "-",
        reason,
    )
    return decision


def rollback(client: Any, name: str) -> tuple[int, int]:
    """Move ``champion`` back to ``previous`` (and ``previous`` to the old champion).

    Returns:
        (old champion version, new champion version).

    Raises:
        RegistryError: no ``previous`` version to roll back to.
    """
    champion = resolve_alias(client, name, CHAMPION)
    previous = find_alias(client, name, PREVIOUS)
    if previous is None:
        raise RegistryError(f"model {name!r} has no 'previous' version to roll back to")
    set_alias(client, name, CHAMPION, previous.version)
    set_alias(client, name, PREVIOUS, champion.version)
    log.info("rollback: champion v%s -> v%s", champion.version, previous.version)
    return champion.version, previous.version
