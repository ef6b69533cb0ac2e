"""`creditops compare` on a real registry (two calibrated versions) and a real store."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditops import registry, schema
from creditops.comparison.run import run_compare
from creditops.config import Settings
from creditops.errors import MonitorError
from creditops.serving.shadow_log import ShadowRow, shadow_engine, write_shadow_rows
from creditops.serving.store import InferenceStore
from creditops.training.run import TrainingReport
from support import make_settings


@pytest.fixture
def pair(trained_store: tuple[Settings, TrainingReport], tmp_path: Path) -> Settings:
    """A private copy of the trained registry whose other finalist is the challenger."""
    settings, _ = trained_store
    source = Path(settings.mlflow.tracking_uri.removeprefix("sqlite:///"))
    shutil.copy(source, tmp_path / "mlflow.db")
    copy = make_settings(tmp_path, mlflow={"artifact_location": settings.mlflow.artifact_location})
    client = registry.connect(copy.mlflow)
    name = copy.mlflow.registered_model
    champion = registry.resolve_alias(client, name, registry.CHAMPION)
    other = next(v for v in registry.list_versions(client, name) if v.version != champion.version)
    registry.set_alias(client, name, registry.CHALLENGER, other.version)
    return copy


def _log_and_shadow(settings: Settings, n: int = 300) -> pd.DataFrame:
    """n applicants scored by both versions (in this process), logged as the service would."""
    client = registry.connect(settings.mlflow)
    name = settings.mlflow.registered_model
    refs = {
        alias: registry.resolve_alias(client, name, alias)
        for alias in (registry.CHAMPION, registry.CHALLENGER)
    }
    from creditops.data import load_dataset

    applicants = (
        load_dataset(settings.data).features.sample(n, random_state=1).reset_index(drop=True)
    )
    scores = {
        alias: registry.load_pipeline(client, ref).predict_proba(applicants)[:, 1]
        for alias, ref in refs.items()
    }
    champion, challenger = refs[registry.CHAMPION], refs[registry.CHALLENGER]
    ids = [uuid.uuid4().hex for _ in range(n)]
    approved = scores[registry.CHAMPION] < champion.threshold
    now = datetime(2025, 3, 15, tzinfo=UTC)
    rows = []
    for i in range(n):
        record = {k: (None if pd.isna(v) else v) for k, v in applicants.iloc[i].items()}
        record.update(
            request_id=ids[i],
            batch_id=ids[i],
            created_at=now,
            application_at=now,
            model_name=name,
            model_version=champion.version,
            threshold=champion.threshold,
            latency_ms=1.0,
            probability=float(scores[registry.CHAMPION][i]),
            decision="approve" if approved[i] else "decline",
            explored=False,
        )
        rows.append(record)
    store = InferenceStore(settings.serve.store_url)
    store.create()
    store.write_rows(rows)
    store.close()
    shadow = [
        ShadowRow(
            ids[i],
            name,
            challenger.version,
            float(scores[registry.CHALLENGER][i]),
            "approve" if scores[registry.CHALLENGER][i] < challenger.threshold else "decline",
            challenger.threshold,
        )
        for i in range(n)
    ]
    write_shadow_rows(shadow_engine(settings.serve.store_url), shadow)
    return pd.DataFrame(
        {
            "champion": scores[registry.CHAMPION],
            "challenger": scores[registry.CHALLENGER],
            "approved": approved,
            "challenger_approved": scores[registry.CHALLENGER] < challenger.threshold,
        }
    )


def test_compare_writes_json_html_and_an_mlflow_run(pair: Settings) -> None:
    expected = _log_and_shadow(pair)
    client = registry.connect(pair.mlflow)
    report = run_compare(
        client,
        pair.mlflow.registered_model,
        store_url=pair.serve.store_url,
        reports_dir=pair.monitor.reports_dir,
        min_rows=50,
    )
    result = report.comparison
    assert result.rows == 300 and result.months == ["2025-03"]
    served = result.swaps[0]
    agree = float(np.mean(expected["approved"] == expected["challenger_approved"]))
    assert served.agreement == pytest.approx(agree)
    assert served.swap_in == int((expected["challenger_approved"] & ~expected["approved"]).sum())
    assert result.realised["champion_roc_auc"] is None  # no outcome has matured yet
    assert result.estimated["rows"] == 300 and result.estimated["champion_roc_auc"] is not None
    data = json.loads(report.json_path.read_text())
    assert data["headline"] == result.headline and report.html_path.exists()
    run = client.get_run(report.run_id)
    assert run.data.tags["creditops.stage"] == "compare"
    assert run.data.metrics["agreement"] == pytest.approx(agree)


def test_compare_refuses_a_challenger_without_a_calibrator(pair: Settings) -> None:
    client = registry.connect(pair.mlflow)
    name = pair.mlflow.registered_model
    challenger = registry.resolve_alias(client, name, registry.CHALLENGER)
    client.set_model_version_tag(name, str(challenger.version), "calibration", "none")
    with pytest.raises(MonitorError, match="no calibrator"):
        run_compare(client, name, store_url=pair.serve.store_url, reports_dir=Path("x"), min_rows=1)


def test_compare_refuses_another_contract(pair: Settings) -> None:
    client = registry.connect(pair.mlflow)
    name = pair.mlflow.registered_model
    challenger = registry.resolve_alias(client, name, registry.CHALLENGER)
    client.set_model_version_tag(name, str(challenger.version), schema.CONTRACT_TAG, "0" * 16)
    with pytest.raises(MonitorError, match="do not score the same applicants"):
        run_compare(client, name, store_url=pair.serve.store_url, reports_dir=Path("x"), min_rows=1)


def test_compare_without_shadow_rows_says_what_to_turn_on(pair: Settings) -> None:
    client = registry.connect(pair.mlflow)
    with pytest.raises(MonitorError, match=r"\[serve\] shadow = true"):
        run_compare(
            client,
            pair.mlflow.registered_model,
            store_url=pair.serve.store_url,
            reports_dir=pair.monitor.reports_dir,
            min_rows=1,
        )


def test_promote_requires_shadow_rows_and_quotes_the_comparison(pair: Settings) -> None:
    from creditops import stages

    _log_and_shadow(pair, n=120)
    evidence = stages.shadow_evidence(pair, None, required=500)
    assert evidence is not None and evidence.rows == 120 and evidence.required == 500
    assert "on 120 shadow-scored applicants" in evidence.headline
    assert stages.shadow_evidence(pair, None) is None  # [promote] min_shadow_rows = 0
    client = registry.connect(pair.mlflow)
    decision = registry.promote(client, pair.mlflow, pair.promote, shadow=evidence)
    # whatever the AUC rules say, a pass is refused for too few shadow rows; a refusal
    # by an earlier rule keeps its rule and still carries the evidence
    assert not decision.promoted
    assert decision.shadow["rows"] == 120
