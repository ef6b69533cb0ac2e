"""Training-speed benchmark: the default `creditops train` vs the original 50-configuration grid.

Both run in this process, one after the other, each into its own fresh MLflow
SQLite store, on the same data:

* original: the original pipeline's way. Each of the 50 configurations of
  its grid (random forest 18, XGBoost 27, logistic regression 5) is fitted
  on the training split (ordinal codes, NaN filled with 0), scored on the
  test split, and logged and registered as its own MLflow model.
* creditops: the default `creditops train` (Optuna search with CV on the
  training split, refit of each family's best, full logging, registration of
  the finalists), then the promotion gate.

It prints wall-clock seconds of each, their ratio, and the test ROC AUC of
what each would promote (the original: best test F1, as it did).

Usage: python bench/train.py
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import mlflow.sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from xgboost import XGBClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import original_features
from creditops import evaluate, registry
from creditops.config import load_config
from creditops.data import load_dataset, split_dataset
from creditops.search_space import default_grid
from creditops.training.run import run_training
from creditops.training.sections import TrainingSections

REPO = Path(__file__).resolve().parents[1]


def run_original_grid(tmp: str) -> tuple[float, float, int]:
    """Seconds, test ROC AUC of the best-F1 model, configurations run."""
    from sklearn.ensemble import RandomForestClassifier

    settings = load_config(None)
    split = split_dataset(load_dataset(settings.data), settings.data.test_size, settings.data.seed)
    X_tr, X_te = original_features(split.X_train), original_features(split.X_test)
    mlflow.set_tracking_uri(f"sqlite:///{tmp}/original.db")
    mlflow.set_experiment("original-grid")
    makers = {
        "random_forest": lambda p: RandomForestClassifier(random_state=42, **p),
        "xgboost": lambda p: XGBClassifier(random_state=42, **p),
        "logreg": lambda p: LogisticRegression(max_iter=2000, **p),
    }
    started = time.perf_counter()
    best = (-1.0, 0.0)
    count = 0
    for family, make in makers.items():
        grid = default_grid()[family]
        for values in itertools.product(*grid.values()):
            params = dict(zip(grid, values, strict=True))
            with mlflow.start_run(run_name=f"{family}_{params}"):
                model = make(params).fit(X_tr, split.y_train)
                f1 = float(f1_score(split.y_test, model.predict(X_te)))
                auc = evaluate.roc_auc(split.y_test, model.predict_proba(X_te)[:, 1])
                mlflow.log_params(params)
                mlflow.log_metric("f1_score", f1)
                mlflow.sklearn.log_model(
                    model,
                    name="model",
                    registered_model_name=f"original-{family}",
                    serialization_format="cloudpickle",
                    input_example=X_tr.head(2),
                )
            best = max(best, (f1, auc))
            count += 1
    return time.perf_counter() - started, best[1], count


def run_creditops(tmp: str) -> tuple[float, float, int]:
    """Seconds (train + promote), test ROC AUC of the promoted model, trials run."""
    settings = load_config(
        REPO / "creditops.toml",
        mlflow={
            "tracking_uri": f"sqlite:///{tmp}/creditops.db",
            "artifact_location": f"{tmp}/artifacts",
        },
        logging={"runs_log": f"{tmp}/runs.log"},
    )
    started = time.perf_counter()
    report = run_training(TrainingSections.from_settings(settings), show_progress=False)
    client = registry.connect(settings.mlflow)
    decision = registry.promote(client, settings.mlflow, settings.promote)
    seconds = time.perf_counter() - started
    trials = sum(f.trials for f in report.finalists)
    return seconds, decision.challenger_auc, trials


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        original_s, original_auc, configs = run_original_grid(tmp)
        print(
            f"original grid : {configs} configurations logged+registered in {original_s:6.1f} s; "
            f"best-F1 model test ROC AUC {original_auc:.4f}"
        )
        creditops_s, creditops_auc, trials = run_creditops(tmp)
        print(
            f"creditops     : {trials} CV trials + refits + logging + registration + gate in "
            f"{creditops_s:6.1f} s; promoted model test ROC AUC {creditops_auc:.4f}"
        )
    print(f"ratio original/creditops wall clock: {original_s / creditops_s:.2f}x")
    print(
        f"target creditops train < 120 s: {'MET' if creditops_s < 120 else 'NOT MET'} ({creditops_s:.1f} s)"
    )


if __name__ == "__main__":
    main()
