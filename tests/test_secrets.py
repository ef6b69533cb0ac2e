"""Secrets stay secret: redaction of URLs, the config record, log lines, errors and command lines."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from creditops.config import MlflowServerConfig, load_config
from creditops.databases import check_database
from creditops.errors import ConfigError, StoreError, TrackingError
from creditops.infra import mlflow_server_command, mlflow_server_environment
from creditops.logs import configure_logging
from creditops.secrets import redact_text, redact_url, redacted_dump
from creditops.serving.prefetch import start_prefetch
from creditops.training.sections import TrainingSections
from support import make_settings

KEY = "K3y-unit-5f1c9a"
PASSWORD = "Pw-unit-7d2e"
PG_URL = f"postgresql+psycopg://creditops:{PASSWORD}@127.0.0.1:9/mlflow"
HTTP_URL = f"http://creditops:{PASSWORD}@tracking.example:5000"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (PG_URL, "postgresql+psycopg://creditops:***@127.0.0.1:9/mlflow"),
        ("postgresql://u:p%40ss%2Fw@db:5432/x", "postgresql://u:***@db:5432/x"),
        (
            "postgresql://u@db/x?password=hunter2&sslmode=require",
            "postgresql://u@db/x?password=***&sslmode=require",
        ),
        (HTTP_URL, "http://creditops:***@tracking.example:5000"),
        ("https://user:pa:ss@host/api?token=abc", "https://user:***@host/api?token=***"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite:///state/inferences.db", "sqlite:///state/inferences.db"),
        ("journal:/tmp/study.log", "journal:/tmp/study.log"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url_hides_the_password_and_keeps_the_rest(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_text_hides_every_url_password_in_a_message() -> None:
    text = f"store '{PG_URL}' down; tracking {HTTP_URL}/api failed"
    redacted = redact_text(text)
    assert PASSWORD not in redacted
    assert redacted == (
        "store 'postgresql+psycopg://creditops:***@127.0.0.1:9/mlflow' down; "
        "tracking http://creditops:***@tracking.example:5000/api failed"
    )


def secret_settings(root: Path) -> TrainingSections:
    settings = make_settings(
        root,
        mlflow={"tracking_uri": HTTP_URL},
        serve={"admin_api_key": KEY, "store_url": PG_URL},
        train={"study_storage": PG_URL},
        mlflow_server={"backend_store_uri": PG_URL},
    )
    return TrainingSections.from_settings(settings)


def test_the_admin_key_is_held_as_a_secret(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, serve={"admin_api_key": KEY})
    assert isinstance(settings.serve.admin_api_key, SecretStr)
    assert settings.serve.admin_api_key.get_secret_value() == KEY
    assert KEY not in repr(settings) and KEY not in str(settings)


def test_the_training_run_config_record_holds_no_key_and_no_password(tmp_path: Path) -> None:
    record = repr(secret_settings(tmp_path).config_record())
    assert KEY not in record and PASSWORD not in record
    dumped = redacted_dump(load_config(None, serve={"admin_api_key": KEY}))
    assert dumped["serve"]["admin_api_key"] == "**********"
    assert secret_settings(tmp_path).config_record()["train"] == {
        **redacted_dump(load_config(None).train),
        "study_storage": "postgresql+psycopg://creditops:***@127.0.0.1:9/mlflow",
    }


def test_a_rejected_config_value_is_quoted_without_its_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, serve={"admin_api_key": [KEY]}, simulate={"service_url": [HTTP_URL]})
    message = str(caught.value)
    assert "serve.admin_api_key = '**********'" in message
    assert "creditops:***@tracking.example" in message
    assert KEY not in message and PASSWORD not in message


def test_log_lines_and_tracebacks_hide_url_passwords(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    path = configure_logging(settings.logging, console=False)
    log = logging.getLogger("creditops.test_secrets")
    log.info("opening the store %s", PG_URL)
    try:
        raise RuntimeError(f"cannot reach {HTTP_URL}")
    except RuntimeError:
        log.exception("tracking failed")
    for handler in logging.getLogger("creditops").handlers:
        handler.flush()
    written = path.read_text()
    assert "creditops:***@127.0.0.1:9/mlflow" in written
    assert "creditops:***@tracking.example:5000" in written
    assert PASSWORD not in written


def test_database_errors_name_the_url_without_its_password() -> None:
    with pytest.raises(StoreError) as unreachable:
        check_database(PG_URL, "inference log", timeout_seconds=1)
    with pytest.raises(StoreError) as malformed:
        check_database(f"postgresql://creditops:{PASSWORD}@db:notaport/x", "inference log")
    for caught in (unreachable, malformed):
        assert PASSWORD not in str(caught.value)
        assert "***@" in str(caught.value)


def test_tracking_errors_name_the_uri_without_its_password() -> None:
    from creditops.tracking import connect

    with pytest.raises(TrackingError) as caught:
        connect(load_config(None, mlflow={"tracking_uri": f"ftp://u:{PASSWORD}@host"}).mlflow)
    assert PASSWORD not in str(caught.value)
    assert "ftp://u:***@host" in str(caught.value)


def test_the_prefetch_helper_gets_its_config_on_stdin_not_argv(tmp_path: Path) -> None:
    # a SQLite store has no password: its path stands for the secret on the command line
    store = tmp_path / f"secret-{PASSWORD}" / "mlflow.db"
    config = load_config(None, mlflow={"tracking_uri": f"sqlite:///{store}"}).mlflow
    prefetch = start_prefetch(config)
    try:
        argv = " ".join(str(arg) for arg in prefetch.process.args)  # type: ignore[union-attr]
        assert PASSWORD not in argv and "mlflow" not in argv.split("prefetch", 1)[1]
        answer = prefetch.result()
    finally:
        prefetch.cleanup()
    assert "no_champion" in answer  # it read the config: it opened that (empty) store
    assert store.is_file()


def test_mlflow_server_gets_its_backend_store_from_the_environment() -> None:
    config = MlflowServerConfig(backend_store_uri=PG_URL)
    command = mlflow_server_command(config)
    assert not any(PASSWORD in arg for arg in command)
    assert "--backend-store-uri" not in command
    assert mlflow_server_environment(config)["MLFLOW_BACKEND_STORE_URI"] == PG_URL
