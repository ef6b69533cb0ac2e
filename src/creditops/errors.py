"""The creditops exception tree.

Every error a user can cause or fix is a ``CreditOpsError``; the CLI turns one
into a single line on stderr and a non-zero exit code. Third-party errors are
translated at the boundary with ``raise ... from exc``.

::

    CreditOpsError
    ├── ConfigError            bad key, type or value in the config file / env
    ├── DataError              dataset cannot be read or is unusable
    │   └── ContractError      columns or rows break the applicant contract
    ├── TrackingError          MLflow tracking store unreachable or malformed
    ├── TrainingError          the search or a fit failed
    ├── BatchEngineError       the Dask cluster of a batch run is unreachable or failed
    ├── RegistryError          registry operation failed
    │   ├── NoChampionError    no version holds the ``champion`` alias
    │   ├── RegistryUnavailableError  the registry did not answer or failed (never "unset")
    │   ├── NoTrainingDataError  a version records no training data to check against
    │   └── ModelIntegrityError  a model's files do not match the digest recorded at registration
    ├── StoreError             the inference log cannot be read or written
    ├── SimulationError        traffic could not be sent to the service
    └── MonitorError           a drift / quality report cannot be produced
"""

from __future__ import annotations


class CreditOpsError(Exception):
    """Base class of every error creditops reports to its user."""

    exit_code = 1


class ConfigError(CreditOpsError):
    """A config key has an unknown name, a wrong type or an out-of-range value."""

    exit_code = 2


class DataError(CreditOpsError):
    """The dataset cannot be loaded or is unusable for training."""


class ContractError(DataError):
    """Columns or rows break the applicant contract (see ``creditops.schema``)."""


class TrackingError(CreditOpsError):
    """The MLflow tracking store is unreachable or its URI is malformed."""


class TrainingError(CreditOpsError):
    """The hyperparameter search or a model fit failed."""


class BatchEngineError(CreditOpsError):
    """The distributed engine of a batch run (a Dask cluster) is unreachable or failed."""


class RegistryError(CreditOpsError):
    """A model-registry operation failed."""


class NoChampionError(RegistryError):
    """No model version holds the ``champion`` alias."""

    def __init__(self, model_name: str) -> None:
        super().__init__(f"no champion for model {model_name!r}: run `creditops promote` first")
        self.model_name = model_name


class ModelIntegrityError(RegistryError):
    """A model's files do not match the SHA-256 recorded when it was registered (or none was)."""


class RegistryUnavailableError(RegistryError):
    """The registry is unreachable or failed (connection refused, timeout, 5xx).

    Distinct from an unset alias: a caller must never read it as "no champion".
    """


class NoTrainingDataError(RegistryError):
    """A version records no training data (registered outside ``creditops train``)."""


class StoreError(CreditOpsError):
    """The inference log cannot be read or written."""


class SimulationError(CreditOpsError):
    """Simulated traffic could not be delivered to the scoring service."""


class MonitorError(CreditOpsError):
    """A drift or quality report cannot be produced."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (its type name when empty).

    Third-party errors (MLflow's above all) carry whole tracebacks or HTML
    pages in their message; a user is shown one line of it.
    """
    from creditops.secrets import redact_text

    # a driver or HTTP error may quote the URL it was given, password included
    lines = [line.strip() for line in redact_text(str(exc)).splitlines() if line.strip()]
    return lines[0][:limit] if lines else type(exc).__name__
