"""The model artifact's fingerprint: recorded at registration, checked before any unpickling.

A registered model is a pickle, and unpickling runs code: whoever could swap
the files behind a version would run code wherever it is loaded. So every
version carries the SHA-256 of its model artifact in the tag
:data:`MODEL_DIGEST_TAG`, computed when it is registered from the files the
store then holds (downloaded right after logging, the same files the
training run loads back and checks). Every stage that loads a version
(serving, batch scoring in this process and on each Dask worker, promotion,
monitoring) downloads its files, checks them with :func:`check_model_files`
and only then unpickles them.

The digest covers every file of the artifact folder, not only the pickle: a
changed ``MLmodel`` (another pickle file, another flavour) or changed
requirements are caught too. It is computed over the files sorted by their
relative POSIX path, each as ``path``, a NUL byte, its length as 8 big-endian
bytes, then its bytes, so that no two folders share a digest by moving bytes
between files. ``registered_model_meta`` is left out: MLflow's client writes
it into each download of a ``models:/NAME/VERSION`` URI (it names the version
being downloaded), it is not part of what was logged.

A version registered without the tag is refused unless ``[mlflow]
require_model_digest = false``, which loads it with a warning.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from creditops.errors import ModelIntegrityError, RegistryError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

MODEL_DIGEST_TAG = "model_sha256"
# written by MLflow's client into each download of models:/NAME/VERSION; not logged
DOWNLOAD_ONLY_FILES = frozenset({"registered_model_meta"})


def read_model_files(folder: Path) -> dict[str, bytes]:
    """Every file of a model artifact folder by relative POSIX path (the download-only one left out).

    Raises:
        RegistryError: the folder cannot be read.
    """
    try:
        return {
            path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*"))
            if path.is_file() and path.relative_to(folder).as_posix() not in DOWNLOAD_ONLY_FILES
        }
    except OSError as exc:
        raise RegistryError(f"cannot read the model files in {folder}: {exc}") from exc


def files_digest(files: Mapping[str, bytes]) -> str:
    """The SHA-256 (hex) of a model artifact's files, in the format the module describes."""
    digest = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        digest.update(name.encode() + b"\0" + len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def folder_digest(folder: Path) -> str:
    """:func:`files_digest` of a model artifact folder on disk."""
    return files_digest(read_model_files(folder))


def check_model_files(
    files: Mapping[str, bytes], expected: str, *, model: str, require: bool
) -> None:
    """Refuse model files whose digest is not the one recorded at registration.

    Args:
        files: the artifact's files (:func:`read_model_files`).
        expected: the version's ``model_sha256`` tag; empty when it has none.
        model: how the error names the version (``model credit-risk version 3``).
        require: refuse a version without the tag (else load it with a warning).

    Raises:
        ModelIntegrityError: the digests differ, or the tag is missing and required.
    """
    if not expected:
        if require:
            raise ModelIntegrityError(
                f"{model} has no {MODEL_DIGEST_TAG} tag (registered without an artifact "
                "digest): refusing to unpickle it unverified; register it again, or set "
                "[mlflow] require_model_digest = false to load such versions"
            )
        log.warning("%s has no %s tag: loading it unverified", model, MODEL_DIGEST_TAG)
        return
    actual = files_digest(files)
    if actual != expected.lower():
        raise ModelIntegrityError(
            f"{model}: its model artifact has SHA-256 {actual}, not the {expected} recorded "
            "at registration: the files were changed after registration; refusing to load it"
        )


def unpickle_model(files: Mapping[str, bytes]) -> Pipeline:
    """The sklearn pipeline of checked model files (a pickle or cloudpickle MLflow sklearn model).

    Reads it as ``mlflow.sklearn`` would, without importing MLflow.

    Raises:
        RegistryError: the files are not a pickle/cloudpickle sklearn model
            without shipped code (MLflow itself must load it).
    """
    import yaml

    try:
        meta = yaml.safe_load(files["MLmodel"])
        flavor = meta["flavors"]["sklearn"]
        serialization = flavor.get("serialization_format", "cloudpickle")
        payload = files[flavor["pickled_model"]]
    except (KeyError, TypeError, yaml.YAMLError) as exc:
        raise RegistryError(f"not an MLflow sklearn model: {exc!r}") from exc
    if flavor.get("code"):
        raise RegistryError("the model ships code: MLflow must load it")
    if serialization == "cloudpickle":
        import cloudpickle

        pipeline: Pipeline = cloudpickle.loads(payload)
        return pipeline
    if serialization == "pickle":
        import pickle

        pipeline = pickle.loads(payload)  # checked against the registered digest first
        return pipeline
    raise RegistryError(f"serialization {serialization!r}: MLflow must load it")
