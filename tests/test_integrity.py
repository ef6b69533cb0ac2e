"""The model artifact's SHA-256: recorded at registration, checked before every unpickling.

A real SQLite registry in a temporary folder: version 1 (champion) has its
pickle overwritten in the artifact store, after registration, with another
valid pickle; version 2 is intact. Serving, ``creditops score``, the Dask
worker's loader and the promotion gate must all refuse version 1 with a reason
naming it and both digests. Expected digests are computed here with hashlib
over the files in the store, in the format ``creditops.integrity`` documents.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import httpx
import pytest

from creditops import features, registry, schema
from creditops.config import Settings
from creditops.data import Dataset
from creditops.errors import ModelIntegrityError
from serving_fixtures import register_model, settings_for, write_config

pytestmark = pytest.mark.slow

CREDITOPS = str(Path(sys.executable).parent / "creditops")


def independent_digest(folder: Path) -> str:
    """SHA-256 over the folder's files: sorted POSIX paths, NUL, 8-byte length, bytes."""
    digest = hashlib.sha256()
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    for path in sorted(paths, key=lambda p: p.relative_to(folder).as_posix()):
        name = path.relative_to(folder).as_posix()
        if name == "registered_model_meta":
            continue
        data = path.read_bytes()
        digest.update(name.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def artifact_folder(settings: Settings, ref: registry.ModelRef) -> Path:
    """Where the local artifact store keeps a version's logged model files."""
    model_id = ref.source.removeprefix("models:/")
    return Path(settings.mlflow.artifact_location) / "models" / model_id / "artifacts"


@dataclass(frozen=True)
class Tampered:
    settings: Settings
    champion: registry.ModelRef  # version 1: its model.pkl replaced after registration
    intact: registry.ModelRef  # version 2
    registered_sha256: str  # version 1's tag, as registered
    actual_sha256: str  # version 1's files now


@pytest.fixture(scope="module")
def tampered(tmp_path_factory: pytest.TempPathFactory, credit_dataset: Dataset) -> Tampered:
    root = tmp_path_factory.mktemp("tampered")
    settings = settings_for(root)
    first = register_model(settings, "logreg", {"C": 0.5})
    second = register_model(settings, "logreg", {"C": 2.0})
    client = registry.connect(settings.mlflow)
    name = settings.mlflow.registered_model
    registry.set_alias(client, name, registry.CHAMPION, first)
    champion = registry.get_version(client, name, first)
    folder = artifact_folder(settings, champion)
    registered = independent_digest(folder)
    other = features.build_pipeline("logreg", {"C": 9.0}, seed=1).fit(
        credit_dataset.features, credit_dataset.target
    )
    (folder / "model.pkl").write_bytes(cloudpickle.dumps(other))  # valid, but not registered
    return Tampered(
        settings,
        champion,
        registry.get_version(client, name, second),
        registered,
        independent_digest(folder),
    )


def test_registration_records_the_digest_of_the_files_in_the_store(tampered: Tampered) -> None:
    intact = tampered.intact
    assert intact.model_sha256 == independent_digest(artifact_folder(tampered.settings, intact))
    assert tampered.champion.model_sha256 == tampered.registered_sha256
    assert tampered.actual_sha256 != tampered.registered_sha256


def test_load_pipeline_refuses_a_changed_artifact_and_loads_an_intact_one(
    tampered: Tampered, credit_dataset: Dataset
) -> None:
    client = registry.connect(tampered.settings.mlflow)
    with pytest.raises(ModelIntegrityError) as refused:
        registry.load_pipeline(client, tampered.champion)
    message = str(refused.value)
    assert "version 1" in message
    assert tampered.registered_sha256 in message and tampered.actual_sha256 in message
    pipeline = registry.load_pipeline(client, tampered.intact)
    assert pipeline.predict_proba(credit_dataset.features.head(5)).shape == (5, 2)


def test_creditops_score_fails_with_one_line_naming_the_version_and_both_digests(
    tampered: Tampered, credit_dataset: Dataset, tmp_path: Path
) -> None:
    config = write_config(tampered.settings, tmp_path / "creditops.toml")
    rows = tmp_path / "rows.csv"
    credit_dataset.features.head(20).to_csv(rows, index=False)
    out = subprocess.run(
        [
            CREDITOPS,
            "--config",
            str(config),
            "score",
            str(rows),
            "--output",
            str(tmp_path / "o.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode != 0
    errors = [line for line in out.stderr.splitlines() if tampered.actual_sha256 in line]
    assert len(errors) == 1, out.stderr
    assert "version 1" in errors[0] and tampered.registered_sha256 in errors[0]
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "o.csv").exists()


def test_the_service_refuses_the_changed_champion_and_says_why_in_ready(
    tampered: Tampered, start_server: Any
) -> None:
    server = start_server(tampered.settings)
    server.wait_ready(need_model=False)
    deadline = time.monotonic() + 60
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = httpx.get(f"{server.url}/ready", timeout=5)
        body = response.json()
        if tampered.actual_sha256 in str(body.get("detail", "")):
            break
        time.sleep(0.2)
    assert response.status_code == 503 and body["ready"] is False, body
    assert "version 1" in body["detail"] and tampered.registered_sha256 in body["detail"]


def test_a_dask_worker_checks_the_files_it_is_sent_before_unpickling(
    tampered: Tampered, credit_dataset: Dataset
) -> None:
    from creditops.batch.chunks import NumberedChunk, ReasonPolicy
    from creditops.batch.engines import _score_on_worker
    from creditops.integrity import read_model_files

    folder = artifact_folder(tampered.settings, tampered.champion)
    chunk = NumberedChunk(1, credit_dataset.features.head(3), ())
    with pytest.raises(ModelIntegrityError, match=tampered.registered_sha256):
        _score_on_worker(
            "tampered", tampered.champion, read_model_files(folder), chunk, ReasonPolicy(top_k=0)
        )
    intact = read_model_files(artifact_folder(tampered.settings, tampered.intact))
    result = _score_on_worker("intact", tampered.intact, intact, chunk, ReasonPolicy(top_k=0))
    assert result is not None


def test_promotion_refuses_to_judge_with_a_changed_champion(
    tampered: Tampered, credit_dataset: Dataset
) -> None:
    settings = tampered.settings
    client = registry.connect(settings.mlflow)
    holdout = credit_dataset.frame[[*schema.FEATURES, schema.TARGET]].head(300)
    gate = settings.promote.model_copy(update={"allow_unverified_holdout": True})
    with pytest.raises(ModelIntegrityError, match=tampered.actual_sha256):
        registry.promote(
            client,
            settings.mlflow,
            gate,
            holdout=holdout,
            challenger_version=tampered.intact.version,
        )
    champion = registry.resolve_alias(client, settings.mlflow.registered_model)
    assert champion.version == tampered.champion.version  # nothing moved


def test_a_version_without_a_digest_is_refused_unless_allowed(
    tampered: Tampered, caplog: pytest.LogCaptureFixture
) -> None:
    settings = tampered.settings
    client = registry.connect(settings.mlflow)
    name = settings.mlflow.registered_model
    # registered by another tool: straight through MLflow, no model_sha256 tag
    source = tampered.intact.source
    # MLflow resolves a models:/m-... source through its default client: point it at this store
    with client.fluent():
        raw = client.create_model_version(
            name, source, run_id=tampered.intact.run_id, model_id=source.removeprefix("models:/")
        )
    untagged = registry.get_version(client, name, int(raw.version))
    assert untagged.model_sha256 == ""
    with pytest.raises(ModelIntegrityError, match="require_model_digest = false"):
        registry.load_pipeline(client, untagged)
    lenient = registry.connect(settings.mlflow.model_copy(update={"require_model_digest": False}))
    with caplog.at_level(logging.WARNING, logger="creditops.integrity"):
        assert registry.load_pipeline(lenient, untagged) is not None
    assert "unverified" in caplog.text
