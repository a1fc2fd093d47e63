"""Settings come from IMGPIPE_* variables; each backend is picked by its URL scheme."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from imgpipe.config import (
    AmqpSettings,
    LocalStorageSettings,
    MemoryBrokerSettings,
    S3Settings,
    Settings,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("IMGPIPE_"):
            monkeypatch.delenv(name)


def test_with_nothing_set_every_backend_is_embedded_under_the_data_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("IMGPIPE_DATA_DIR", str(tmp_path))
    s = Settings()
    assert s.database.url == f"sqlite:///{tmp_path / 'imgpipe.db'}"
    assert s.storage == LocalStorageSettings(root=tmp_path / "objects")
    assert isinstance(s.broker, MemoryBrokerSettings)
    assert (s.port, s.max_upload_bytes, s.max_pixels) == (8000, 25 * 1024 * 1024, 100_000_000)
    assert (s.bucket_original, s.bucket_processed) == ("images-original", "images-processed")


def test_the_server_stack_is_chosen_by_url_schemes(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "IMGPIPE_DATABASE_URL": "postgresql://imgpipe:pw@db:5432/imgpipe",
        "IMGPIPE_BROKER_URL": "amqp://imgpipe:pw@rabbitmq:5672/",
        "IMGPIPE_STORAGE_URL": "s3://",
        "IMGPIPE_S3_ENDPOINT_URL": "http://minio:9000",
        "IMGPIPE_S3_PUBLIC_ENDPOINT_URL": "http://localhost:9000",
        "IMGPIPE_S3_ACCESS_KEY": "key",
        "IMGPIPE_S3_SECRET_KEY": "secret",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = Settings()
    assert s.database.url == "postgresql+psycopg://imgpipe:pw@db:5432/imgpipe"
    assert isinstance(s.broker, AmqpSettings) and s.broker.url == env["IMGPIPE_BROKER_URL"]
    assert isinstance(s.storage, S3Settings)
    assert s.storage.endpoint_url == "http://minio:9000"
    assert s.storage.public_endpoint_url == "http://localhost:9000"


def test_backends_are_chosen_independently(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IMGPIPE_DATABASE_URL", f"sqlite:///{tmp_path}/x.db")
    monkeypatch.setenv("IMGPIPE_BROKER_URL", "amqp://guest:guest@localhost/")
    monkeypatch.setenv("IMGPIPE_STORAGE_URL", f"file://{tmp_path}/objects")
    s = Settings()
    assert s.database.url.startswith("sqlite:///") and isinstance(s.broker, AmqpSettings)
    assert s.storage == LocalStorageSettings(root=tmp_path / "objects")


def test_s3_without_credentials_is_refused_with_the_variable_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGPIPE_STORAGE_URL", "s3://")
    with pytest.raises(ValidationError, match="IMGPIPE_S3_ACCESS_KEY"):
        Settings()


def test_production_refuses_development_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {
        "IMGPIPE_ENV": "production",
        "IMGPIPE_STORAGE_URL": "s3://",
        "IMGPIPE_S3_ACCESS_KEY": "minioadmin",
        "IMGPIPE_S3_SECRET_KEY": "minioadmin",
    }.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValidationError, match="development default"):
        Settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("IMGPIPE_DATABASE_URL", "mysql://x"),
        ("IMGPIPE_BROKER_URL", "redis://x"),
        ("IMGPIPE_STORAGE_URL", "ftp://x"),
        ("IMGPIPE_PORT", "70000"),
        ("IMGPIPE_MAX_UPLOAD_BYTES", "0"),
    ],
)
def test_a_bad_value_fails_at_start_naming_the_problem(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError):
        Settings()
