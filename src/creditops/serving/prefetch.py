"""Fetch the champion in a helper process while the server imports its own libraries.

Start-up is mostly imports: the web stack, sklearn and the booster on one side;
MLflow and its store (to resolve the ``champion`` alias and download the
model) on the other. Run one after the other they cost ~2x; a helper process
does the MLflow half on the other core. The server then reads the downloaded
model with cloudpickle, as ``mlflow.sklearn`` would, without importing MLflow
before its first answer.

Nothing heavy is imported at module level: :func:`start_prefetch` must run
before the server's own imports.
"""

from __future__ import annotations

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
            [sys.executable, "-m", "creditops.serving.prefetch", mlflow_json, str(self.folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

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


def load_local_pipeline(path: Path) -> Pipeline:
    """The sklearn pipeline of a downloaded MLflow sklearn model folder.

    Raises:
        PrefetchError: the folder is not a pickle/cloudpickle sklearn model.
    """
    import yaml

    try:
        meta = yaml.safe_load((path / "MLmodel").read_text())
        flavor = meta["flavors"]["sklearn"]
        serialization = flavor.get("serialization_format", "cloudpickle")
        pickled = path / flavor["pickled_model"]
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise PrefetchError(f"{path} is not an MLflow sklearn model: {exc}") from exc
    if flavor.get("code"):
        raise PrefetchError("the model ships code: let MLflow load it")
    if serialization == "cloudpickle":
        import cloudpickle

        with pickled.open("rb") as handle:
            return cloudpickle.load(handle)
    if serialization == "pickle":
        import pickle

        with pickled.open("rb") as handle:
            return pickle.load(handle)  # the registry is trusted, as MLflow trusts it
    raise PrefetchError(f"serialization {serialization!r}: let MLflow load it")


def _main(mlflow_json: str, folder: str) -> None:
    # A short-lived process: without the cyclic GC, importing MLflow and its store is
    # ~0.6 s quicker (each full collection rescans every module imported so far).
    gc.disable()

    import mlflow.artifacts

    from creditops import registry
    from creditops.config import MlflowConfig
    from creditops.errors import NoChampionError

    config = MlflowConfig.model_validate_json(mlflow_json)
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
    _main(sys.argv[1], sys.argv[2])
    # The answer is out and nothing was written but the download, which is the
    # parent's now: skip the interpreter's tear-down of MLflow's ~200,000 objects
    # (~0.6 s the parent would wait for).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
