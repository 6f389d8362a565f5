"""Pure rules of the domain, without a server."""

from __future__ import annotations

import pytest

from ump_llm_connections.config import Settings, normalise_database_url
from ump_llm_connections.domain import (
    ApiFormat,
    ConnectionCreate,
    ConnectionType,
    default_api_format,
    mask_key,
)


@pytest.mark.parametrize(
    ("key", "mask"),
    [
        ("sk-proj-abcdefghijklmnop1234", "sk-…1234"),
        ("sk-ant-api03-abcdefghijkl9876", "sk-…9876"),
        ("gsk_abcdefghijklmnopqrst5555", "gsk_…5555"),
        ("AIzaSyAbcdefghijklmnop0000", "…0000"),
        ("short", "…"),
    ],
)
def test_mask_shows_prefix_and_last_four(key: str, mask: str) -> None:
    assert mask_key(key) == mask


@pytest.mark.parametrize(
    ("ctype", "url", "expected"),
    [
        (ConnectionType.local, None, ApiFormat.ollama),
        (ConnectionType.local, "http://localhost:11434", ApiFormat.ollama),
        (ConnectionType.local, "http://localhost:8080", ApiFormat.openai),
        (ConnectionType.local, "http://localhost:5000/v1", ApiFormat.openai),
        (ConnectionType.remote, "http://gpu:8000/v1", ApiFormat.openai),
        (ConnectionType.aws_spot, "http://10.0.0.5:8000/v1", ApiFormat.openai),
        (ConnectionType.anthropic, None, ApiFormat.anthropic),
        (ConnectionType.google, None, ApiFormat.google),
        (ConnectionType.azure, "https://a.openai.azure.com", ApiFormat.openai),
    ],
)
def test_default_api_format(ctype: ConnectionType, url: str | None, expected: ApiFormat) -> None:
    assert default_api_format(ctype, url) is expected


def test_tags_are_stripped_and_deduplicated() -> None:
    data = ConnectionCreate(
        name="T", connection_type=ConnectionType.local, model_name="m", tags=[" a", "b", "a "]
    )
    assert data.tags == ["a", "b"]


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u@h:5432/db", "postgresql+asyncpg://u@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_database_url_is_normalised(given: str, used: str) -> None:
    assert normalise_database_url(given) == used
    assert Settings(database_url=given).resolved_database_url == used


def test_allowed_hosts_from_a_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UMP_ALLOWED_HOSTS", "llm.internal, gateway.local")
    assert Settings().allowed_hosts == ["llm.internal", "gateway.local"]


def test_default_database_lives_in_the_data_dir() -> None:
    settings = Settings(data_dir="/srv/ump")
    assert settings.resolved_database_url == "sqlite+aiosqlite:////srv/ump/ump.db"
    assert str(settings.key_file) == "/srv/ump/secret.key"
