"""What a training run writes to MLflow: its inputs, every trial, and each family's finalist.

Every write goes through the :class:`~creditops.tracking.TrackingClient` the
run was given. A finalist is the best trial of a family refit on the whole
training split, logged as a child run of the training run with its evidence
(:mod:`creditops.training.evidence`: test metrics, fairness by Age band and
Marital status, permutation importance, a model card; then figures and the
model itself) and registered as a model version (:func:`log_finalist`).

MLflow is imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import logging
import platform
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from creditops import fairness, plots, schema
from creditops.calibration import CALIBRATION_TAG
from creditops.config import FairnessConfig, TrainConfig
from creditops.data import Split
from creditops.errors import TrackingError, TrainingError, first_line
from creditops.scorecard import log_points_table
from creditops.secrets import redact_url, redact_values
from creditops.training.evidence import FinalistFit, calibration_card, fit_finalist, model_card
from creditops.training.search import ParamValue, TrialResult, describe_weights

if TYPE_CHECKING:
    from mlflow.models import ModelSignature

    from creditops.tracking import TrackingClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finalist:
    """The best trial of one family, refit, logged and registered."""

    family: str
    params: dict[str, ParamValue]
    cv_auc: float
    cv_auc_sd: float
    threshold: float
    test_metrics: dict[str, float]
    run_id: str
    model_uri: str
    version: int
    trials: int


# --- what every run records ---------------------------------------------------


def code_version() -> str:
    """The git commit of the working tree (short), else the package version."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if out.returncode == 0:
            return out.stdout.strip()
    except OSError:
        pass
    from creditops import __version__

    return __version__


def pip_requirements(family: str) -> list[str]:
    """The pinned packages a logged model of ``family`` needs to load."""
    from importlib.metadata import version

    packages = ["mlflow", "scikit-learn", "pandas", "numpy", "cloudpickle", "scipy"]
    if family == "xgboost":
        packages.append("xgboost")
    if family == "lightgbm":
        packages.append("lightgbm")
    packages += {"scorecard": ["optbinning", "ortools"]}.get(family, [])
    return [f"{name}=={version(name)}" for name in packages]


def model_signature() -> ModelSignature:
    """The input/output schema registered with every model: the contract's columns."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    columns: list[ColSpec | TensorSpec] = []
    for name, spec in schema.FIELDS.items():
        kind = "string" if isinstance(spec, schema.CategoricalField) else "double"
        columns.append(ColSpec(kind, name, required=not spec.nullable))
    outputs = Schema([TensorSpec(np.dtype("float64"), (-1, 2))])
    return ModelSignature(inputs=Schema(columns), outputs=outputs)


def training_run_tags(context: str, data_hash: str, source: str) -> dict[str, str]:
    """The tags of a training run (the parent of its trials and finalists)."""
    return {
        "creditops.stage": "train",
        "creditops.context": context,
        "data_hash": data_hash,
        "data_source": source,
        "code_version": code_version(),
        "python": platform.python_version(),
    }


def log_training_inputs(
    client: TrackingClient,
    run_id: str,
    config: TrainConfig,
    split: Split,
    budgets: dict[str, int],
    record: dict[str, object],
) -> None:
    """The search's parameters, the whole config (``config.json``) and the exact data split.

    ``record`` is stored redacted: no key and no URL password reaches the store.

    ``sample_weights`` says how the training rows were weighted: ``none``, or
    how many rows had each weight (``{"1": 2850, "3": 511}``).
    """
    import json

    from creditops.tracking import TEST_DATA_ARTIFACT, TRAIN_DATA_ARTIFACT

    client.log_values(
        run_id,
        params={
            "families": ",".join(config.families),
            "search": config.search,
            "cv_folds": config.cv_folds,
            "seed": config.seed,
            "trials": json.dumps(budgets),
            "threshold_policy": config.threshold.policy,
            "train_rows": len(split.train),
            "test_rows": len(split.test),
            "sample_weights": describe_weights(split.weights),
        },
    )
    client.log_dict(run_id, redact_values(record), "config.json")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "data").mkdir()
        split.train.to_csv(Path(tmp) / TRAIN_DATA_ARTIFACT, index=False)
        split.test.to_csv(Path(tmp) / TEST_DATA_ARTIFACT, index=False)
        client.log_artifacts(run_id, str(Path(tmp) / "data"), "data")


def log_trial(client: TrackingClient, parent_id: str, result: TrialResult) -> None:
    """One trial as a finished child run of the training run: its parameters and CV AUC."""
    with client.run(
        f"{result.family}-{result.number}",
        tags={"creditops.stage": "trial", "family": result.family},
        parent_id=parent_id,
    ) as run_id:
        client.log_values(
            run_id,
            metrics={"cv_roc_auc": result.cv_auc, "cv_roc_auc_sd": result.cv_auc_sd},
            params=result.params,
            tags={"trial": str(result.number)},
        )


@contextmanager
def tracking_failures(uri: str, context: str) -> Iterator[None]:
    """Turn the tracking store or a file write failing mid-run into one TrackingError.

    A server gone, a full disk or a read-only artifact folder ends the run with
    one line naming the cause (``[Errno 28] No space left on device: '<path>'``).

    Nothing is half-registered: a version is registered only after its model is
    logged and loaded back, and the ``challenger`` alias moves only at the end.
    """
    import requests
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, requests.RequestException, ConnectionError) as exc:
        raise TrackingError(
            f"`{context}` stopped: MLflow tracking store {redact_url(uri)} failed: "
            f"{first_line(exc)}. "
            "Versions registered before the failure are complete; no alias was moved"
        ) from exc
    except OSError as exc:  # a full disk or a read-only artifact folder: one line, not a traceback
        raise TrackingError(
            f"`{context}` stopped: writing its files failed: {exc} (MLflow store "
            f"{redact_url(uri)}); free disk space or fix the permissions, then run it again. "
            "Versions registered before the failure are complete; no alias was moved"
        ) from exc


# --- a finalist in MLflow -----------------------------------------------------


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Silence a library logger's warnings for a block (MLflow's pickle notice, chosen on purpose)."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _finite(values: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None and np.isfinite(v)}


def _calibration_metrics(fit: FinalistFit) -> dict[str, float]:
    """ECE and Brier before/after calibration on the test split (``test_``), CV Brier as is."""
    return {
        (k if k.startswith("cv_") else f"test_{k}"): v for k, v in fit.calibration_metrics.items()
    }


def _log_figures(
    client: TrackingClient, run_id: str, family: str, split: Split, fit: FinalistFit
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        title = f"{family} (test split)"
        y, proba = split.y_test, fit.proba
        plots.roc_curve_png(y, proba, folder / "roc_curve.png", title)
        plots.ks_curve_png(y, proba, folder / "ks_curve.png", title)
        plots.calibration_png(y, proba, folder / "calibration.png", title)
        calibrated = None if fit.calibration_method == "none" else proba
        raw = fit.raw_proba if fit.raw_proba is not None else proba
        plots.reliability_png(y, raw, calibrated, folder / "reliability_curve.png", title)
        plots.confusion_png(y, proba, fit.threshold, folder / "confusion_matrix.png", title)
        plots.importance_png(fit.importance, folder / "feature_importance.png", title)
        client.log_artifacts(run_id, tmp, "figures")


def _log_model(
    client: TrackingClient, run_id: str, family: str, split: Split, fit: FinalistFit
) -> tuple[str, str]:
    """Log the pipeline; its model URI and files' SHA-256 once, loaded back, it predicts the same.

    The digest is taken from the files downloaded back from the store, the
    ones that are then unpickled and checked: what every later load compares against.
    """
    import mlflow.sklearn

    from creditops.integrity import files_digest, read_model_files, unpickle_model

    with _quiet("mlflow.sklearn"):
        model_uri = client.log_sklearn_model(
            run_id,
            fit.logged_model,  # the pipeline with its calibrator: one artifact, one PD
            # cloudpickle, not MLflow 3's skops default: skops refuses the
            # FunctionTransformer and booster types this pipeline holds.
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            signature=model_signature(),
            input_example=split.X_train.head(3),
            pip_requirements=pip_requirements(family),
            pyfunc_predict_fn="predict_proba",
        )
    with tempfile.TemporaryDirectory(prefix="creditops-logged-") as tmp:
        files = read_model_files(client.download_model(model_uri, Path(tmp)))
    again = unpickle_model(files).predict_proba(split.X_test)[:, 1]
    if not np.allclose(again, fit.proba, rtol=0, atol=1e-12):
        raise TrainingError(f"{family}: the logged model does not predict as the fitted one")
    return model_uri, files_digest(files)


def _log_finalist_run(
    client: TrackingClient,
    parent_id: str,
    best: TrialResult,
    fit: FinalistFit,
    split: Split,
    data_hash: str,
    threshold_policy: str,
) -> tuple[str, str, str]:
    """The finalist's child run with all its evidence; returns its run id, model URI and SHA-256."""
    tags = {"creditops.stage": "finalist", "family": best.family, "data_hash": data_hash}
    with client.run(f"finalist-{best.family}", tags=tags, parent_id=parent_id) as run_id:
        metrics = {
            "cv_roc_auc": best.cv_auc,
            "cv_roc_auc_sd": best.cv_auc_sd,
            **{f"test_{k}": v for k, v in fit.metrics.items()},
            **fit.fairness,
            **_calibration_metrics(fit),
        }
        client.log_values(
            run_id,
            params={**best.params, "family": best.family, "threshold_policy": threshold_policy},
            metrics=_finite(metrics),
        )
        importance = {k: float(v) for k, v in fit.importance.items()}
        client.log_dict(run_id, importance, "feature_importance.json")
        card = model_card(
            best.family,
            best.params,
            (best.cv_auc, best.cv_auc_sd),
            fit.metrics,
            fit.fairness,
            fit.importance,
            data_hash,
            len(split.train),
            len(split.test),
            calibration_lines=calibration_card(fit.calibration_method, fit.calibration_metrics),
            fairness_lines=fairness.card_lines(fit.fairness_report, fit.proxy),
        )
        card += log_points_table(client, run_id, fit.pipeline)  # "" unless a scorecard
        client.log_text(run_id, card, "model_card.md")
        _log_figures(client, run_id, best.family, split, fit)
        model_uri, model_sha256 = _log_model(client, run_id, best.family, split, fit)
    return run_id, model_uri, model_sha256


def _version_tags(
    best: TrialResult, fit: FinalistFit, data_hash: str, train_run_id: str
) -> dict[str, str]:
    """What the registry (and every later stage) reads off a version."""
    return {
        "family": best.family,
        "threshold": repr(fit.threshold),  # on the calibrated scale when calibrated
        CALIBRATION_TAG: fit.calibration_method,
        schema.CONTRACT_TAG: schema.contract_digest(),
        "data_hash": data_hash,
        "train_run_id": train_run_id,
        "code_version": code_version(),
        "cv_roc_auc": f"{best.cv_auc:.6f}",
        **{f"test_{k}": f"{v:.6f}" for k, v in fit.metrics.items() if np.isfinite(v)},
        **{k: f"{v:.6f}" for k, v in _calibration_metrics(fit).items() if np.isfinite(v)},
    }


def log_finalist(
    client: TrackingClient,
    model_name: str,
    best: TrialResult,
    split: Split,
    config: TrainConfig,
    data_hash: str,
    train_run_id: str,
    n_trials: int,
    fairness_config: FairnessConfig | None = None,
    proxy: dict[str, float | None] | None = None,
) -> Finalist:
    """Refit the best trial on the whole training split, log it with its evidence, register it.

    The version is registered only after the model and all its artifacts are
    logged and the logged model, loaded back by URI, predicts exactly as the
    in-memory one did; nothing is half-registered.

    Args:
        model_name: the registered model the version is added to.
        train_run_id: the training run (the finalist run's parent; it holds the data).
        n_trials: how many trials the family's search ran.
    """
    fit = fit_finalist(best, split, config, fairness_config=fairness_config, proxy=proxy)
    run_id, model_uri, model_sha256 = _log_finalist_run(
        client, train_run_id, best, fit, split, data_hash, config.threshold.policy
    )
    from creditops.integrity import MODEL_DIGEST_TAG

    tags = {**_version_tags(best, fit, data_hash, train_run_id), MODEL_DIGEST_TAG: model_sha256}
    version = client.register_version(model_name, model_uri, run_id, tags)
    m = fit.metrics
    log.info(
        "finalist %s: CV AUC %.4f ± %.4f, test AUC %.4f, KS %.4f, F1(bad) %.4f at threshold %.4f -> version %d",
        best.family,
        best.cv_auc,
        best.cv_auc_sd,
        m["roc_auc"],
        m["ks"],
        m["f1_bad"],
        fit.threshold,
        version,
    )
    return Finalist(
        best.family,
        best.params,
        best.cv_auc,
        best.cv_auc_sd,
        fit.threshold,
        m,
        run_id,
        model_uri,
        version,
        n_trials,
    )
