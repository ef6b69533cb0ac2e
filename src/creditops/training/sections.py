"""The config sections a training run reads, in one frozen bundle.

Training reads four sections: ``[train]`` (the search), ``[data]`` (where the
rows come from when no split is given), ``[mlflow]`` (the store and the
registered model) and ``[logging]`` (for the search processes it starts). It
also logs the whole configuration it ran under as the training run's
``config.json``: that record is carried as plain JSON, so no stage below the
caller holds the whole ``Settings``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from creditops.config import DataConfig, LoggingConfig, MlflowConfig, Settings, TrainConfig


@dataclass(frozen=True)
class TrainingSections:
    """What ``run_training`` and the search workers are configured by.

    Attributes:
        record: the configuration logged as the run's ``config.json`` (JSON);
            when empty, the four sections themselves.
    """

    train: TrainConfig
    data: DataConfig
    mlflow: MlflowConfig
    logging: LoggingConfig
    record: dict[str, object] = field(default_factory=dict, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainingSections:
        """The sections of the whole config, which is kept as the run's record."""
        return cls(
            train=settings.train,
            data=settings.data,
            mlflow=settings.mlflow,
            logging=settings.logging,
            record=settings.model_dump(mode="json"),
        )

    def config_record(self) -> dict[str, object]:
        """The configuration to log with the training run."""
        if self.record:
            return self.record
        return {
            name: section.model_dump(mode="json")
            for name, section in (
                ("mlflow", self.mlflow),
                ("data", self.data),
                ("logging", self.logging),
                ("train", self.train),
            )
        }
