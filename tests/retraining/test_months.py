"""The trigger over the monitoring table's months: three states, estimate vs realised, backtest.

Month rows are written into a real monitoring table (SQLite in tmp) and read
back, as ``creditops check`` reads them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from creditops import registry
from creditops.config import CheckConfig, Settings
from creditops.errors import MonitorError
from creditops.monitoring.table import MonitoringRow, read_table, write_rows
from creditops.retraining import months as monthly
from creditops.retraining import run as retrain
from creditops.retraining.table import table_months
from creditops.training.run import TrainingReport
from creditops.training.sections import TrainingSections
from support import make_settings

NOW = datetime(2026, 6, 1, tzinfo=UTC)
# one breach fires here; the confirmation of a breach (confirm_months) has its own tests
CONFIG = CheckConfig(
    months=3, min_matured_rows=300, max_auc_drop=0.05, backtest_max_yellow=2, confirm_months=1
)
CONFIRM = CONFIG.model_copy(update={"confirm_months": 2})
TRAINING_AUC = 0.85


def _month(
    month: str,
    *,
    version: int = 2,
    mature: bool = False,
    auc: float | None = None,
    auc_rows: int = 0,
    est: tuple[float, float, float] | None = None,
    psi: float = 0.02,
    lights: tuple[int, int] | None = None,
) -> list[MonitoringRow]:
    """One month's rows as the monthly monitor writes them."""
    detail = json.dumps({"granted": 200, "matured": auc_rows, "month_mature": mature})
    rows = [
        MonitoringRow(month, version, "volume", "volume", 300.0, rows=300),
        MonitoringRow(month, version, "matured_share", "volume", auc_rows / 200, detail=detail),
        MonitoringRow(month, version, "matured_rows", "volume", float(auc_rows), rows=200),
        MonitoringRow(month, version, "psi:Income", "drift", psi, rows=300),
        MonitoringRow(month, version, "psi:score", "drift", psi / 2, rows=300),
        MonitoringRow(month, version, "drift_share", "drift", 0.1, rows=300),
        MonitoringRow(month, version, "roc_auc", "realised", auc, rows=auc_rows),
        MonitoringRow(month, version, "bad_rate", "realised", 0.3 if auc else None, rows=auc_rows),
    ]
    if est is not None:
        value, lower, upper = est
        rows.append(
            MonitoringRow(month, version, "est_roc_auc", "estimated", value, lower, upper, 300)
        )
    if lights is not None:
        rows += [
            MonitoringRow(month, version, "backtest:red_bands", "backtest", float(lights[0])),
            MonitoringRow(month, version, "backtest:yellow_bands", "backtest", float(lights[1])),
        ]
    return rows


def _evidence(tmp_path: Path, *months: list[MonitoringRow]) -> list[monthly.MonthEvidence]:
    url = f"sqlite:///{tmp_path / 'inferences.db'}"
    write_rows(url, [row for rows in months for row in rows])
    read = table_months(url, 2)
    assert read is not None
    return read[1]


def _rules(evidence: list[monthly.MonthEvidence], config: CheckConfig = CONFIG) -> dict[str, Any]:
    return {r.rule: r for r in monthly.month_rules(evidence, config, TRAINING_AUC)}


def test_drift_rules_judge_the_first_month(tmp_path: Path) -> None:
    rules = _rules(_evidence(tmp_path, _month("2025-01", psi=0.40)))
    assert rules["psi"].state == "fired" and rules["psi"].months == ("2025-01",)
    assert "largest PSI 0.400 (Income)" in rules["psi"].reason
    assert rules["drift_share"].state == "quiet"


def test_realised_auc_abstains_on_too_few_matured_outcomes(tmp_path: Path) -> None:
    # 2 mature months with 120 outcomes each: 240 < min_matured_rows 300
    evidence = _evidence(
        tmp_path,
        _month("2025-01", mature=True, auc=0.60, auc_rows=120),
        _month("2025-02", mature=True, auc=0.60, auc_rows=120),
    )
    rule = _rules(evidence)["auc_drop"]
    assert (rule.state, rule.fired, rule.value) == ("abstain", False, None)
    assert rule.rows == 240
    assert "240 matured outcomes < min_matured_rows 300" in rule.reason
    decision = monthly.decide_on_months(
        evidence,
        CONFIG,
        training_auc=TRAINING_AUC,
        champion_version=2,
        retrain=True,
        last_retrain=None,
        now=NOW,
    )
    assert "auc_drop" in decision.abstained
    assert rule.reason in decision.messages


def test_early_defaults_of_an_open_vintage_are_not_judged(tmp_path: Path) -> None:
    # a month whose window is open has a figure on its early defaults only: not evidence
    evidence = _evidence(tmp_path, _month("2025-05", mature=False, auc=0.40, auc_rows=400))
    rule = _rules(evidence)["auc_drop"]
    assert rule.state == "abstain" and "0 matured outcomes" in rule.reason
    assert evidence[0].evidence == "drift"


def test_realised_auc_pools_the_newest_mature_months(tmp_path: Path) -> None:
    evidence = _evidence(
        tmp_path,
        _month("2025-01", mature=True, auc=0.90, auc_rows=500),
        _month("2025-02", mature=True, auc=0.70, auc_rows=200),
        _month("2025-03", mature=True, auc=0.76, auc_rows=200),
    )
    rule = _rules(evidence)["auc_drop"]
    # the newest two give 400 >= 300 outcomes: (0.70 * 200 + 0.76 * 200) / 400 = 0.73
    assert rule.state == "fired" and rule.evidence == "realised"
    assert rule.months == ("2025-02", "2025-03") and rule.rows == 400
    assert rule.value == pytest.approx(TRAINING_AUC - 0.73)


def test_the_estimate_judges_immature_months_and_realised_ones_take_over(
    tmp_path: Path,
) -> None:
    low = (0.70, 0.66, 0.74)  # the band's top 0.74 < 0.85 - 0.05
    immature = _evidence(tmp_path, _month("2025-06", est=low))
    rules = _rules(immature)
    assert rules["est_auc"].state == "fired" and rules["est_auc"].evidence == "estimated"
    assert rules["est_auc"].value == 0.74 and rules["est_auc"].limit == pytest.approx(0.80)
    assert rules["auc_drop"].state == "abstain"
    assert immature[0].evidence == "estimated"

    # the same month once matured: judged on its outcomes, the estimate no longer counts
    matured = _evidence(
        tmp_path / "later", _month("2025-06", mature=True, auc=0.84, auc_rows=400, est=low)
    )
    rules = _rules(matured)
    assert rules["est_auc"].state == "abstain"
    assert "judged on outcomes" in rules["est_auc"].reason
    assert rules["auc_drop"].state == "quiet" and rules["auc_drop"].evidence == "realised"
    assert matured[0].evidence == "realised"


@pytest.mark.parametrize(
    ("lights", "state"),
    [(None, "abstain"), ((0, 0), "quiet"), ((0, 1), "quiet"), ((0, 2), "fired"), ((1, 0), "fired")],
)
def test_the_backtest_rule(tmp_path: Path, lights: tuple[int, int] | None, state: str) -> None:
    older = _month("2025-01", mature=True, lights=(0, 0))
    newest = _month("2025-02", mature=True, lights=lights)
    rule = _rules(_evidence(tmp_path, older if lights is None else [], newest))["backtest"]
    assert rule.state == ("quiet" if lights is None else state)
    assert rule.months == (("2025-01",) if lights is None else ("2025-02",))


def test_a_realised_breach_fires_only_when_the_earlier_pool_breaches_too(
    tmp_path: Path,
) -> None:
    months = [
        _month("2025-01", mature=True, auc=0.90, auc_rows=500),
        _month("2025-02", mature=True, auc=0.70, auc_rows=200),
        _month("2025-03", mature=True, auc=0.76, auc_rows=200),
    ]
    rule = _rules(_evidence(tmp_path, *months), CONFIRM)["auc_drop"]
    # the newest pool (02, 03: 0.73) breaches; the months before it (01 alone: 0.90) do not
    assert rule.state == "quiet" and "not confirmed: 0 of the 1" in rule.reason
    assert rule.value == pytest.approx(TRAINING_AUC - 0.73)

    months[0] = _month("2025-01", mature=True, auc=0.72, auc_rows=500)  # now they do
    rule = _rules(_evidence(tmp_path / "b", *months), CONFIRM)["auc_drop"]
    assert rule.state == "fired" and "confirmed on the 1 earlier" in rule.reason


@pytest.mark.parametrize(
    ("before", "state"), [((0, 0), "quiet"), ((0, 2), "fired"), ((1, 0), "fired"), (None, "quiet")]
)
def test_a_backtest_breach_fires_only_when_the_month_before_breached_too(
    tmp_path: Path, before: tuple[int, int] | None, state: str
) -> None:
    older = [] if before is None else [_month("2025-01", mature=True, lights=before)]
    newest = _month("2025-02", mature=True, lights=(0, 3))
    rule = _rules(_evidence(tmp_path, *older, newest), CONFIRM)["backtest"]
    assert rule.state == state
    if before is None:
        assert "only 0 earlier backtested month(s) yet" in rule.reason
    else:
        assert rule.months == ("2025-01", "2025-02")


def test_no_backtest_at_all_abstains(tmp_path: Path) -> None:
    rule = _rules(_evidence(tmp_path, _month("2025-01")))["backtest"]
    assert rule.state == "abstain" and "no month has a PD backtest" in rule.reason


def test_the_look_back_names_its_months_and_their_evidence(tmp_path: Path) -> None:
    rows = [_month(f"2025-{m:02d}", est=(0.84, 0.80, 0.88)) for m in range(1, 6)]
    evidence = _evidence(tmp_path, *rows)
    decision = monthly.decide_on_months(
        evidence,
        CONFIG,
        training_auc=TRAINING_AUC,
        champion_version=2,
        retrain=False,
        last_retrain=None,
        now=NOW,
    )
    assert [m["month"] for m in decision.months] == ["2025-03", "2025-04", "2025-05"]
    assert {m["evidence"] for m in decision.months} == {"estimated"}
    assert decision.window == "application months 2025-03..2025-05 of v2"
    assert decision.source == "months" and not decision.fired
    assert any("no month of it has matured outcomes yet" in m for m in decision.messages)


def test_months_of_another_version_are_not_the_champions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inferences.db'}"
    write_rows(url, _month("2025-01", version=1))
    assert table_months(url, 2) is None
    assert table_months(f"sqlite:///{tmp_path / 'absent.db'}", 2) is None
    assert not (tmp_path / "absent.db").exists()


# --- run_check on the table, a real champion --------------------------------------------


def _isolated(trained_store: tuple[Settings, TrainingReport], tmp_path: Path) -> Settings:
    settings, _ = trained_store
    dirs = make_settings(tmp_path)
    return settings.model_copy(
        update={
            "check": settings.check.model_copy(update={"decisions_dir": dirs.check.decisions_dir}),
            "monitor": settings.monitor.model_copy(
                update={"reports_dir": dirs.monitor.reports_dir}
            ),
            "serve": dirs.serve,
        }
    )


def test_a_check_judges_the_monitoring_table_when_it_has_the_champions_months(
    trained_store: tuple[Settings, TrainingReport], tmp_path: Path
) -> None:
    settings = _isolated(trained_store, tmp_path)
    client = registry.connect(settings.mlflow)
    champion = registry.resolve_alias(client, settings.mlflow.registered_model)
    write_rows(settings.serve.store_url, _month("2025-01", version=champion.version, psi=0.5))
    decision = retrain.run_check(
        settings.check,
        settings.promote,
        TrainingSections.from_settings(settings),
        retrain=False,
        store_url=settings.serve.store_url,
        window_rows=100,
        reports_dir=settings.monitor.reports_dir,
    )
    assert decision.source == "months" and decision.action == "alert"
    assert decision.reasons == ["2025-01: largest PSI 0.500 (Income) >= psi_max 0.250"]
    assert decision.figures["training_auc"] == champion.metrics["test_roc_auc"]
    assert {r["rule"]: r["state"] for r in decision.rules}["backtest"] == "abstain"
    record = json.loads((settings.check.decisions_dir / retrain.DECISION_LATEST).read_text())
    assert record["months"][0]["month"] == "2025-01" and record["source"] == "months"
    # the verdict is marked in the monitoring table, on the newest month judged (the dashboard)
    table = read_table(settings.serve.store_url)
    mark = table[table["kind"] == "trigger"]
    assert list(zip(mark["month"], mark["metric"], mark["value"], strict=True)) == [
        ("2025-01", "trigger:decision", 1.0)
    ]
    assert json.loads(mark["detail"].iloc[0])["action"] == "alert"

    # figures older than [check] max_figures_age_minutes are refused, with the fix
    with pytest.raises(MonitorError, match="run `creditops monitor --by month` first"):
        retrain.run_check(
            settings.check,
            settings.promote,
            TrainingSections.from_settings(settings),
            retrain=False,
            store_url=settings.serve.store_url,
            window_rows=100,
            reports_dir=settings.monitor.reports_dir,
            now=datetime.now(UTC) + pd.Timedelta(days=2),
        )


def _curve(month: str, share_at: dict[int, float], granted: int = 200) -> list[MonitoringRow]:
    return [
        MonitoringRow(month, 2, f"vintage:mob{k}", "vintage", share, rows=granted)
        for k, share in share_at.items()
    ]


@pytest.mark.parametrize(("newest_share", "state"), [(0.04, "quiet"), (0.10, "fired")])
def test_early_defaults_against_the_first_vintages_curve(
    tmp_path: Path, newest_share: float, state: str
) -> None:
    # three baseline vintages: 4 % bad by 3 months on book; the newest three at mob 3
    months = [
        _month(f"2025-0{i}") + _curve(f"2025-0{i}", {1: 0.01, 2: 0.02, 3: 0.04}) for i in (1, 2, 3)
    ] + [_month(f"2025-0{i}") + _curve(f"2025-0{i}", {3: newest_share}) for i in (4, 5, 6)]
    rule = _rules(_evidence(tmp_path, *months))["early_default"]
    # expected: 3 months x 200 loans x 4 % = 24 bads; observed 600 x newest_share
    assert rule.state == state
    assert "24.0 expected" in rule.reason
    assert rule.value == pytest.approx(newest_share / 0.04)
    assert rule.months == ("2025-04", "2025-05", "2025-06")


def test_early_defaults_abstain_without_a_baseline_at_those_months_on_book(
    tmp_path: Path,
) -> None:
    rule = _rules(_evidence(tmp_path, _month("2025-01") + _curve("2025-01", {1: 0.01})))
    assert rule["early_default"].state == "abstain"
