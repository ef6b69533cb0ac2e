"""Scenario generators (pure, seeded) and the HTTP sender (on an in-process transport)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from creditops import schema, validation
from creditops.config import SCENARIOS, SimulateConfig
from creditops.data import Dataset, split_dataset
from creditops.errors import SimulationError
from creditops.monitoring.psi import feature_psi
from creditops.simulation import scenarios, sender

CONFIG = SimulateConfig()


@pytest.fixture(scope="module")
def source(credit_dataset: Dataset) -> scenarios.ScenarioSource:
    split = split_dataset(credit_dataset, 0.2, 42)
    _, tail = scenarios.ordered_halves(credit_dataset.frame)
    return scenarios.ScenarioSource(
        unseen=split.test, tail=scenarios.exclude_rows(tail, split.train)
    )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_generators_are_deterministic_by_seed(
    source: scenarios.ScenarioSource, scenario: str
) -> None:
    first = scenarios.generate_traffic(scenario, source, CONFIG, 300, seed=3)
    again = scenarios.generate_traffic(scenario, source, CONFIG, 300, seed=3)
    other = scenarios.generate_traffic(scenario, source, CONFIG, 300, seed=4)
    pd.testing.assert_frame_equal(first.features, again.features)
    if first.outcomes is not None:
        assert again.outcomes is not None
        np.testing.assert_array_equal(first.outcomes, again.outcomes)
    assert not first.features.equals(other.features)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_generated_row_satisfies_the_contract(
    source: scenarios.ScenarioSource, scenario: str
) -> None:
    traffic = scenarios.generate_traffic(scenario, source, CONFIG, 500, seed=1)
    assert list(traffic.features.columns) == list(schema.FEATURES)
    assert len(traffic) == 500
    assert validation.validate_rows(traffic.features) == []


def test_none_keeps_every_marginal_of_its_source(source: scenarios.ScenarioSource) -> None:
    traffic = scenarios.generate_traffic("none", source, CONFIG, 2_000, seed=0)
    psi = feature_psi(source.unseen, traffic.features, bins=10)
    assert max(psi.values()) < 0.05, psi


def test_none_outcomes_follow_the_real_labels(source: scenarios.ScenarioSource) -> None:
    traffic = scenarios.generate_traffic("none", source, SimulateConfig(jitter=0.0), 1_000, seed=0)
    assert traffic.outcomes is not None
    real = (source.unseen[schema.TARGET] == "bad").mean()
    assert abs(traffic.outcomes.mean() - real) < 0.02


def test_covariate_shifts_the_applicant_mix(source: scenarios.ScenarioSource) -> None:
    base = scenarios.generate_traffic("none", source, CONFIG, 2_000, seed=0).features
    shifted = scenarios.generate_traffic("covariate", source, CONFIG, 2_000, seed=0).features
    ratio = shifted["Income"].median() / base["Income"].median()
    assert 0.5 < ratio < 0.7
    assert shifted["Age"].mean() - base["Age"].mean() > 6
    assert (shifted["Home"] == "rent").mean() == pytest.approx(CONFIG.renter_share, abs=0.05)
    assert shifted["Amount"].mean() > 1.2 * base["Amount"].mean()


def test_concept_turns_goods_bad_only_inside_the_segment(source: scenarios.ScenarioSource) -> None:
    config = SimulateConfig(jitter=0.0, concept_flip_share=0.5)
    concept = scenarios.generate_traffic("concept", source, config, 2_000, seed=0)
    assert concept.outcomes is not None
    owners = (concept.features["Home"] == "owner").to_numpy()
    # the same seed and stream draw the same applicants with their real labels
    rng = np.random.default_rng([0, SCENARIOS.index("concept")])
    rows = scenarios.resample_rows(source.unseen, 2_000, rng)
    real = (rows[schema.TARGET] == "bad").to_numpy().astype(int)
    np.testing.assert_array_equal(concept.outcomes[~owners], real[~owners])
    assert (concept.outcomes[owners] >= real[owners]).all()
    assert concept.outcomes[owners].mean() > real[owners].mean() + 0.25


def test_original_outcomes_give_the_configured_accuracy() -> None:
    declined = np.random.default_rng(0).random(20_000) < 0.3
    outcomes = scenarios.original_outcomes(declined, 0.5, seed=1)
    assert np.mean(outcomes == declined) == pytest.approx(0.5, abs=0.02)
    exact = scenarios.original_outcomes(declined, 1.0, seed=1)
    np.testing.assert_array_equal(exact, declined.astype(int))


def test_unknown_scenario_is_refused(source: scenarios.ScenarioSource) -> None:
    with pytest.raises(SimulationError, match="unknown scenario 'drifty'"):
        scenarios.generate_traffic("drifty", source, CONFIG, 10, seed=0)


def test_ordered_tail_leaves_out_rows_the_model_trained_on(credit_dataset: Dataset) -> None:
    head, tail = scenarios.ordered_halves(credit_dataset.frame)
    assert len(head) + len(tail) == len(credit_dataset.frame)
    assert scenarios.exclude_rows(tail, tail.iloc[:100]).shape[0] <= len(tail) - 100
    assert len(scenarios.exclude_rows(tail, head)) >= len(tail) - 5  # a few duplicate rows at most


# --- the sender, on an in-process service -----------------------------------------------


class FakeService:
    """A tiny stand-in for the scoring API, behind an httpx.MockTransport."""

    def __init__(self, *, unknown_feedback: bool = False) -> None:
        self.scored: list[dict[str, Any]] = []
        self.feedback: list[dict[str, Any]] = []
        self.unknown_feedback = unknown_feedback
        self.declined: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(200, json={"status": "ok"})
        body = json.loads(request.content)
        if request.url.path == "/predict":
            out = []
            for row in body:
                self.scored.append(row)
                request_id = f"r{len(self.scored)}"
                declined = row["Records"] == "yes"
                if declined:
                    self.declined.add(request_id)
                out.append(
                    {
                        "request_id": request_id,
                        "probability": 0.9 if declined else 0.1,
                        "decision": "decline" if declined else "approve",
                        "model_version": 3,
                    }
                )
            return httpx.Response(200, json={"predictions": out})
        if request.url.path == "/feedback":
            if self.unknown_feedback:
                return httpx.Response(404, json={"detail": "unknown request_id"})
            self.feedback.append(body)
            return httpx.Response(200, json={"status": "recorded"})
        return httpx.Response(404)


def _send(traffic: scenarios.Traffic, service: Any, **config: Any) -> sender.SimulationSummary:
    import asyncio

    settings = SimulateConfig(concurrency=4, batch_rows=7, **config)
    return asyncio.run(
        sender.send_traffic(traffic, settings, 5, transport=httpx.MockTransport(service))
    )


def test_traffic_is_scored_and_only_granted_outcomes_posted(
    source: scenarios.ScenarioSource,
) -> None:
    traffic = scenarios.generate_traffic("none", source, CONFIG, 50, seed=0)
    service = FakeService()
    summary = _send(traffic, service)
    declined = int((traffic.features["Records"] == "yes").sum())
    assert 0 < declined < 50
    assert (summary.scored, summary.refused, summary.declined) == (50, 0, declined)
    # a one-month calendar in 2024: every granted loan's window has closed by now
    assert summary.outcomes_posted == summary.approved == 50 - declined
    assert summary.model_versions == {3: 50}
    assert len(service.feedback) == 50 - declined
    assert not {f["request_id"] for f in service.feedback} & service.declined
    assert {f["outcome"] for f in service.feedback} <= {"good", "bad"}
    assert all(v is None or isinstance(v, int | float | str) for v in service.scored[0].values())
    assert all(row["application_at"].startswith("2024-01-") for row in service.scored)
    assert all(f["observed_at"] > "2024-01-" for f in service.feedback)


def test_never_posted_outcomes(source: scenarios.ScenarioSource) -> None:
    traffic = scenarios.generate_traffic("none", source, CONFIG, 200, seed=0)
    service = FakeService()
    summary = _send(traffic, service, never_share=0.2)
    assert summary.outcomes_never > 0 and summary.outcomes_pending == 0
    assert len(service.feedback) == summary.outcomes_posted
    assert len(service.feedback) + summary.outcomes_never == summary.approved


def test_original_outcomes_follow_the_decisions(source: scenarios.ScenarioSource) -> None:
    traffic = scenarios.generate_traffic("original", None, CONFIG, 400, seed=0)
    summary = _send(traffic, FakeService(), accuracy=1.0)
    assert summary.accuracy == 1.0


def test_feedback_for_unknown_ids_is_counted_as_failed(source: scenarios.ScenarioSource) -> None:
    traffic = scenarios.generate_traffic("none", source, CONFIG, 20, seed=0)
    summary = _send(traffic, FakeService(unknown_feedback=True))
    assert summary.feedback_failed == summary.approved > 0


def test_outcomes_are_posted_with_the_feedback_key_and_only_there(
    source: scenarios.ScenarioSource,
) -> None:
    traffic = scenarios.generate_traffic("none", source, CONFIG, 10, seed=0)
    service = FakeService()
    keys: dict[str, set[str | None]] = {"/predict": set(), "/feedback": set()}

    def recording(request: httpx.Request) -> httpx.Response:
        if request.url.path in keys:
            keys[request.url.path].add(request.headers.get("X-Feedback-Key"))
        return service(request)

    summary = _send(traffic, recording, feedback_api_key="k-123")
    assert summary.outcomes_posted == summary.approved > 0 and summary.feedback_failed == 0
    assert keys == {"/predict": {None}, "/feedback": {"k-123"}}


def test_unreachable_service_is_one_clear_error(source: scenarios.ScenarioSource) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    traffic = scenarios.generate_traffic("none", source, CONFIG, 5, seed=0)
    with pytest.raises(SimulationError, match=r"unreachable.*creditops serve"):
        _send(traffic, refuse)
