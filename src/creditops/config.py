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
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from creditops.config_sections import (  # re-exported: every stage imports its section from here
    FAMILIES,
    SCENARIOS,
    BatchConfig,
    CheckConfig,
    DashboardConfig,
    DataConfig,
    FairnessConfig,
    Family,
    LoggingConfig,
    MlflowConfig,
    MlflowServerConfig,
    MonitorConfig,
    PipelineConfig,
    Probability,
    PromoteConfig,
    Scenario,
    Section,
    ServeConfig,
    SimulateConfig,
    ThresholdConfig,
    TrainConfig,
)
from creditops.errors import ConfigError
from creditops.secrets import redact_values

__all__ = [
    "FAMILIES",
    "SCENARIOS",
    "BatchConfig",
    "CheckConfig",
    "DashboardConfig",
    "DataConfig",
    "FairnessConfig",
    "Family",
    "LoggingConfig",
    "MlflowConfig",
    "MlflowServerConfig",
    "MonitorConfig",
    "PipelineConfig",
    "Probability",
    "PromoteConfig",
    "Scenario",
    "Section",
    "ServeConfig",
    "Settings",
    "SimulateConfig",
    "ThresholdConfig",
    "TrainConfig",
    "load_config",
]


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
    fairness: FairnessConfig = FairnessConfig()
    serve: ServeConfig = ServeConfig()
    simulate: SimulateConfig = SimulateConfig()
    monitor: MonitorConfig = MonitorConfig()
    check: CheckConfig = CheckConfig()
    pipeline: PipelineConfig = PipelineConfig()
    mlflow_server: MlflowServerConfig = MlflowServerConfig()
    batch: BatchConfig = BatchConfig()
    dashboard: DashboardConfig = DashboardConfig()

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
