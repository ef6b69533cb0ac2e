"""What a check refuses to judge, what it records, and the gate's deciding rule.

Stale figures (a failed or unfinished monitor run, another champion, too old),
the data-quality rule, a ``--current`` window that cannot drive a retraining,
a failed retraining that must not start the cooldown, and the promotion gate
naming the rule that decided.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from creditops import registry
from creditops.config import CheckConfig, PromoteConfig, Settings
from creditops.errors import MonitorError, NoChampionError, TrainingError
from creditops.monitoring import result as monitor_result
from creditops.monitoring.reports import SUMMARY_LATEST
from creditops.monitoring.result import MonitorResult, MonitorRunStatus
from creditops.monitoring.run import run_monitor
from creditops.registry.promotion import gate_verdict
from creditops.retraining import policy
from creditops.retraining import run as retrain
from creditops.retraining.freshness import require_fresh_figures
from creditops.training.run import TrainingReport
from creditops.training.sections import TrainingSections
from support import make_settings

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
STAMP = "2026-06-01T11:30:00Z"  # 30 min before NOW


def _result(**changes: Any) -> MonitorResult:
    values: dict[str, Any] = {
        "created_at": STAMP,
        "model_name": "credit-risk",
        "champion_version": 2,
        "data_hash": "abc",
        "threshold": 0.5,
        "window": "last 400 rows of the inference log",
        "rows": 400,
        "labelled_rows": 0,
        "reference_rows": 1_000,
        "drift_share": 0.0,
        "feature_psi": {"Income": 0.01},
    }
    return MonitorResult(**(values | changes))


def _ok(result: MonitorResult) -> MonitorRunStatus:
    return MonitorRunStatus("ok", result.created_at, result.created_at, result.created_at)


def _fresh(result: MonitorResult, status: MonitorRunStatus | None, **options: Any) -> float:
    args: dict[str, Any] = {"champion_version": 2, "now": NOW, "max_age_minutes": 60.0}
    return require_fresh_figures(result, status, **(args | options))


# --- stale figures, pure ---------------------------------------------------------------


def test_fresh_figures_of_the_latest_completed_run_are_judged() -> None:
    result = _result()
    assert _fresh(result, _ok(result)) == pytest.approx(30.0)
    assert _fresh(result, None) == pytest.approx(30.0)


def test_figures_left_behind_by_a_failed_monitor_run_are_refused() -> None:
    failed = MonitorRunStatus(
        "failed", "2026-06-01T11:55:00Z", error="MonitorError: the window has no rows"
    )
    with pytest.raises(MonitorError) as caught:
        _fresh(_result(), failed)
    message = str(caught.value)
    assert "failed: MonitorError: the window has no rows" in message
    assert "last 400 rows of the inference log" in message and STAMP in message
    assert "run `creditops monitor` first" in message and "\n" not in message


def test_figures_older_than_an_unfinished_monitor_run_are_refused() -> None:
    running = MonitorRunStatus("running", "2026-06-01T11:55:00Z")
    with pytest.raises(MonitorError, match="has not recorded its end"):
        _fresh(_result(), running)


def test_a_summary_the_latest_run_did_not_write_is_refused() -> None:
    status = _ok(_result(created_at="2026-06-01T11:50:00Z"))
    with pytest.raises(MonitorError, match="not the one the latest"):
        _fresh(_result(), status)


def test_figures_about_another_champion_are_refused() -> None:
    with pytest.raises(MonitorError, match=r"is about v2, the champion is now v3: run"):
        _fresh(_result(), None, champion_version=3)


def test_figures_older_than_the_maximum_age_are_refused() -> None:
    with pytest.raises(
        MonitorError,
        match=r"computed at 2026-06-01T11:30:00Z is 30.0 min old, more than "
        r"\[check\] max_figures_age_minutes 20: run `creditops monitor` first",
    ):
        _fresh(_result(), None, max_age_minutes=20.0)


def test_the_maximum_age_is_configurable_and_positive() -> None:
    assert CheckConfig().max_figures_age_minutes == 1440.0
    with pytest.raises(ValueError, match="max_figures_age_minutes"):
        CheckConfig(max_figures_age_minutes=0)


def test_a_monitor_run_records_its_status(tmp_path: Path) -> None:
    config = make_settings(tmp_path).monitor

    @monitor_result.records_run_status
    def fails(config: Any) -> MonitorResult:
        raise MonitorError("the window has no rows")

    @monitor_result.records_run_status
    def works(config: Any) -> MonitorResult:
        assert monitor_result.read_run_status(config.reports_dir).state == "running"  # type: ignore[union-attr]
        return _result()

    assert monitor_result.read_run_status(config.reports_dir) is None
    with pytest.raises(MonitorError):
        fails(config)
    status = monitor_result.read_run_status(config.reports_dir)
    assert status is not None and status.state == "failed"
    assert status.error == "MonitorError: the window has no rows"
    works(config)
    status = monitor_result.read_run_status(config.reports_dir)
    assert status is not None and (status.state, status.created_at) == ("ok", STAMP)
    assert status.champion_version == 2


def test_a_failed_run_monitor_leaves_a_failed_status(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(NoChampionError):
        run_monitor(settings.monitor, settings.mlflow, store_url="", drift_share=0.5)
    status = monitor_result.read_run_status(settings.monitor.reports_dir)
    assert status is not None and status.state == "failed"
    assert "NoChampionError" in status.error


# --- the data-quality rule ---------------------------------------------------------------

CONFIG = CheckConfig(max_invalid_share=0.05)
HEALTHY = policy.TriggerFigures(rows=950, labelled_rows=0, drift_share=0.0, max_psi=0.01)


@pytest.mark.parametrize(("share", "fired"), [(0.051, True), (0.05, False), (0.0, False)])
def test_the_invalid_share_rule_fires_above_its_limit(share: float, fired: bool) -> None:
    figures = policy.TriggerFigures(**{**HEALTHY.__dict__, "invalid_share": share})
    assert policy.rule_invalid_share(figures, CONFIG).fired is fired


def test_the_invalid_share_rule_is_in_the_record_with_its_numbers() -> None:
    figures = policy.figures_from_monitor(_result(rows=900, invalid_rows=100, invalid_share=0.1))
    decision = policy.decide(
        figures, CONFIG, champion_version=2, retrain=False, last_retrain=None, now=NOW
    )
    assert decision.fired and decision.action == "alert"
    rule = next(r for r in decision.rules if r["rule"] == "invalid_share")
    assert (rule["value"], rule["limit"], rule["fired"]) == (0.1, 0.05, True)
    assert decision.reasons == [
        "invalid share 0.100 (100 of 1000 rows break the contract) > max_invalid_share 0.050"
    ]
    assert "invalid_share=0.1000/0.05" in decision.log_line()


def test_only_broken_rows_alert_but_never_retrain() -> None:
    figures = policy.TriggerFigures(**{**HEALTHY.__dict__, "invalid_share": 0.5})
    decision = policy.decide(
        figures, CONFIG, champion_version=2, retrain=True, last_retrain=None, now=NOW
    )
    assert decision.fired and decision.action == "alert"
    assert any("only data-quality rules fired" in m for m in decision.messages)


def test_without_a_data_quality_figure_the_rule_abstains() -> None:
    rules = policy.evaluate_rules(HEALTHY, CONFIG)
    assert "invalid_share" not in {r.rule for r in rules}


# --- the gate names its rule -------------------------------------------------------------

GATE = PromoteConfig(min_auc=0.7, min_improvement=0.01)


@pytest.mark.parametrize(
    ("challenger", "champion", "rule", "promoted"),
    [
        (math.nan, 0.8, "undefined", False),
        (0.65, None, "floor", False),
        (0.68, 0.60, "floor", False),  # beats the champion, the floor refuses
        (0.80, None, "no_champion", True),
        (0.805, 0.80, "margin", False),
        (0.811, 0.80, "margin", True),
    ],
)
def test_the_gate_names_the_rule_that_decided(
    challenger: float, champion: float | None, rule: str, promoted: bool
) -> None:
    verdict, named, _ = gate_verdict(challenger, champion, GATE)
    assert (verdict, named) == (promoted, rule)


def test_a_floor_refusal_of_a_better_model_says_so_with_the_numbers() -> None:
    _, _, reason = gate_verdict(0.68, 0.60, GATE)
    assert "0.6800 is below the minimum 0.7000 ([promote] min_auc, the floor)" in reason
    assert "beats champion 0.6000 by +0.0800: the floor, not the margin, refused it" in reason


# --- run_check on a real store -------------------------------------------------------------


def _isolated(store: tuple[Settings, TrainingReport], tmp_path: Path) -> Settings:
    """The shared store's settings, with reports, decisions and the inference log in tmp_path."""
    settings, _ = store
    dirs = make_settings(tmp_path)
    return settings.model_copy(
        update={
            "monitor": settings.monitor.model_copy(
                update={"reports_dir": dirs.monitor.reports_dir}
            ),
            "check": settings.check.model_copy(
                update={"decisions_dir": dirs.check.decisions_dir, "min_drift_share": 0.5}
            ),
            "serve": dirs.serve,
        }
    )


def _summary(settings: Settings, **changes: Any) -> MonitorResult:
    """A drifted window's summary of the current champion, computed now, on disk."""
    client = registry.connect(settings.mlflow)
    champion = registry.resolve_alias(client, settings.mlflow.registered_model)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = _result(champion_version=champion.version, created_at=stamp, drift_share=1.0)
    for key, value in changes.items():
        setattr(result, key, value)
    folder = settings.monitor.reports_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SUMMARY_LATEST).write_text(json.dumps(result.as_dict()), encoding="utf-8")
    monitor_result.write_run_status(folder, _ok(result))
    return result


def _check(settings: Settings) -> policy.TriggerDecision:
    return retrain.run_check(
        settings.check,
        settings.promote,
        TrainingSections.from_settings(settings),
        retrain=True,
        store_url=settings.serve.store_url,
        window_rows=settings.monitor.window_rows,
        reports_dir=settings.monitor.reports_dir,
    )


def _latest_record(settings: Settings) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (settings.check.decisions_dir / retrain.DECISION_LATEST).read_text()
    )
    return data


def test_a_check_names_the_window_and_time_it_judges(
    trained_store: tuple[Settings, TrainingReport], tmp_path: Path
) -> None:
    settings = _isolated(trained_store, tmp_path)
    result = _summary(settings, drift_share=0.0)
    decision = _check(settings)
    assert decision.action == "none"
    record = _latest_record(settings)
    assert record["window"] == result.window
    assert record["figures_computed_at"] == result.created_at
    assert 0 <= record["figures_age_minutes"] < 5
    assert f"computed at {result.created_at}" in decision.log_line()


def test_a_failed_retraining_is_recorded_and_starts_no_cooldown(
    trained_store: tuple[Settings, TrainingReport], tmp_path: Path
) -> None:
    settings = _isolated(trained_store, tmp_path)
    _summary(settings)
    # the inference log is empty: no labelled production rows to retrain on
    with pytest.raises(TrainingError, match="needs more labelled production rows"):
        _check(settings)
    record = _latest_record(settings)
    assert record["action"] == "retrain" and record["retrain"] is None
    assert record["retrain_error"].startswith("TrainingError: retraining needs more labelled")
    assert retrain.read_last_retrain(settings.check.decisions_dir) is None


def test_a_current_file_window_alerts_and_says_why_it_cannot_retrain(
    trained_store: tuple[Settings, TrainingReport], tmp_path: Path
) -> None:
    settings = _isolated(trained_store, tmp_path)
    _summary(settings, window="file current.csv", current_file="current.csv")
    decision = _check(settings)
    assert decision.fired and decision.action == "alert" and decision.retrain is None
    assert any(
        "the file current.csv (`creditops monitor --current`), whose rows are not in the "
        "inference log" in m
        for m in decision.messages
    )
    assert retrain.read_last_retrain(settings.check.decisions_dir) is None


def test_a_check_after_a_failed_monitor_run_is_refused(
    trained_store: tuple[Settings, TrainingReport], tmp_path: Path
) -> None:
    settings = _isolated(trained_store, tmp_path)
    _summary(settings)
    failed = MonitorRunStatus("failed", "2026-06-01T11:55:00Z", error="MonitorError: no rows")
    monitor_result.write_run_status(settings.monitor.reports_dir, failed)
    with pytest.raises(MonitorError, match="failed: MonitorError: no rows"):
        _check(settings)
    assert not (settings.check.decisions_dir / retrain.DECISION_LATEST).exists()


def test_the_promote_run_logs_the_deciding_rule(
    trained_store: tuple[Settings, TrainingReport],
) -> None:
    settings, _ = trained_store
    client = registry.connect(settings.mlflow)
    champion = registry.resolve_alias(client, settings.mlflow.registered_model)
    decision = registry.promote(
        client, settings.mlflow, settings.promote, challenger_version=champion.version
    )
    assert not decision.promoted and decision.rule == "already_champion"
    assert client.get_run(decision.run_id).data.tags["gate_rule"] == "already_champion"
    assert registry.resolve_alias(client, settings.mlflow.registered_model) == champion
