"""The config sections a training run reads, in one frozen bundle.

Training reads four sections: ``[train]`` (the search), ``[data]`` (where the
rows come from when no split is given), ``[mlflow]`` (the store and the
registered model) and ``[logging]`` (for the search processes it starts). It
also logs the whole configuration it ran under as the training run's
``config.json``: that record is carried as plain JSON, so no stage below the
caller holds the whole ``Settings``. The record is redacted
(:func:`creditops.secrets.redacted_dump`): keys show as ``**********`` and
URLs without their passwords, as MLflow keeps it for anyone who can read the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from creditops.config import (
    DataConfig,
    FairnessConfig,
    LoggingConfig,
    MlflowConfig,
    Settings,
    TrainConfig,
)
from creditops.secrets import redact_values, redacted_dump


@dataclass(frozen=True)
class TrainingSections:
    """What ``run_training`` and the search workers are configured by.

    Attributes:
        record: the configuration logged as the run's ``config.json`` (JSON,
            redacted); when empty, the four sections themselves.
    """

    train: TrainConfig
    data: DataConfig
    mlflow: MlflowConfig
    logging: LoggingConfig
    record: dict[str, object] = field(default_factory=dict, compare=False)
    # which inputs the model may not see, and the fairness figures' groups
    fairness: FairnessConfig = field(default_factory=FairnessConfig)

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainingSections:
        """The sections of the whole config, which is kept (redacted) as the run's record."""
        return cls(
            train=settings.train,
            data=settings.data,
            mlflow=settings.mlflow,
            logging=settings.logging,
            record=redacted_dump(settings),
            fairness=settings.fairness,
        )

    def config_record(self) -> dict[str, object]:
        """The configuration to log with the training run, without any secret."""
        if self.record:
            # redacted again: a caller may have built the record by hand
            record: dict[str, object] = redact_values(self.record)
            return record
        return {
            name: redacted_dump(section)
            for name, section in (
                ("mlflow", self.mlflow),
                ("data", self.data),
                ("logging", self.logging),
                ("train", self.train),
            )
        }
