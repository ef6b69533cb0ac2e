"""Fetch the champion in a helper process while the server imports its own libraries.

Start-up is mostly imports: the web stack, sklearn and the booster on one side;
MLflow and its store (to resolve the ``champion`` alias and download the
model) on the other. Run one after the other they cost ~2x; a helper process
does the MLflow half on the other core. The server then checks the downloaded
files against the SHA-256 recorded at registration (:mod:`creditops.integrity`)
and reads the model with cloudpickle, as ``mlflow.sklearn`` would, without
importing MLflow before its first answer.

Nothing heavy is imported at module level: :func:`start_prefetch` must run
before the server's own imports. The ``[mlflow]`` section (its tracking URI may
carry a password) reaches the helper on its standard input, never on its command
line, which any user of the machine can read (``ps``).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from creditops.config import MlflowConfig


class PrefetchError(Exception):
    """The helper could not deliver; the caller loads the champion itself."""


class Prefetch:
    """A running helper process that resolves ``champion`` and downloads its model."""

    def __init__(self, mlflow_json: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="creditops-champion-"))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "creditops.serving.prefetch", str(self.folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        stdin = self.process.stdin
        assert stdin is not None  # stdin=PIPE above
        # A few hundred bytes: the pipe's buffer takes them without waiting for the
        # helper. A broken pipe means it died at once, which result() reports.
        with contextlib.suppress(BrokenPipeError):
            stdin.write(mlflow_json.encode())
            stdin.flush()
        with contextlib.suppress(BrokenPipeError):
            stdin.close()
        self.process.stdin = None  # communicate() must not touch the closed pipe

    def result(self, timeout: float = 120.0) -> dict[str, Any]:
        """The helper's answer: ``{"ref": {...}, "path": ...}`` or ``{"no_champion": message}``.

        Raises:
            PrefetchError: the helper failed or said something unexpected.
        """
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.process.kill()
            self.process.communicate()
            raise PrefetchError(f"champion prefetch took over {timeout} s") from exc
        if self.process.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise PrefetchError(f"champion prefetch failed: {tail[0]}")
        try:
            answer: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            raise PrefetchError("champion prefetch gave no answer") from exc
        return answer

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()  # reaps it and closes its pipes
        shutil.rmtree(self.folder, ignore_errors=True)


def start_prefetch(mlflow_config: MlflowConfig) -> Prefetch:
    """Start the helper for the ``[mlflow]`` section ``mlflow_config``."""
    return Prefetch(mlflow_config.model_dump_json())


def load_local_pipeline(
    path: Path, *, model: str, expected_sha256: str, require_digest: bool
) -> Pipeline:
    """The sklearn pipeline of a downloaded MLflow sklearn model folder, checked first.

    The folder's files are read once, checked against the digest recorded at
    registration, and only those checked bytes are unpickled.

    Args:
        path: the downloaded model folder.
        model: how errors name the version (``model credit-risk version 3``).
        expected_sha256: the version's ``model_sha256`` tag (empty if it has none).
        require_digest: ``[mlflow] require_model_digest``.

    Raises:
        ModelIntegrityError: the files are not the ones registered.
        PrefetchError: the folder is not a pickle/cloudpickle sklearn model.
    """
    from creditops.errors import RegistryError
    from creditops.integrity import check_model_files, read_model_files, unpickle_model

    try:
        files = read_model_files(path)
    except RegistryError as exc:
        raise PrefetchError(str(exc)) from exc
    check_model_files(files, expected_sha256, model=model, require=require_digest)
    try:
        return unpickle_model(files)
    except RegistryError as exc:
        raise PrefetchError(f"{path}: {exc}; let MLflow load it") from exc


def _main(folder: str) -> None:
    # A short-lived process: without the cyclic GC, importing MLflow and its store is
    # ~0.6 s quicker (each full collection rescans every module imported so far).
    gc.disable()

    import mlflow.artifacts

    from creditops import registry
    from creditops.config import MlflowConfig
    from creditops.errors import NoChampionError

    config = MlflowConfig.model_validate_json(sys.stdin.buffer.read())
    client = registry.connect(config)
    try:
        ref = registry.resolve_alias(client, config.registered_model)
    except NoChampionError as exc:
        print(json.dumps({"no_champion": str(exc)}))
        return
    with client.fluent():
        path = mlflow.artifacts.download_artifacts(artifact_uri=ref.model_uri, dst_path=folder)
    print(json.dumps({"ref": ref.as_dict(), "path": path}))


if __name__ == "__main__":
    _main(sys.argv[1])
    # The answer is out and nothing was written but the download, which is the
    # parent's now: skip the interpreter's tear-down of MLflow's ~200,000 objects
    # (~0.6 s the parent would wait for).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
