"""``UMP_LOG_FORMAT``: text looks as uvicorn always did; json is one object a line, and a key an
upstream echoes back reaches no line of it, nor a health row, an event or a response."""

from __future__ import annotations

import copy
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from uvicorn.config import LOGGING_CONFIG

from tests.conftest import Database, Server, start_server
from tests.test_redaction import HEADERS, KEY, _connection, _gateway_call, leaked
from tests.test_webhooks import Receiver, wait_for, webhook
from tests.upstreams.base import Behaviour
from tests.upstreams.openai import FakeOpenAI
from ump_llm_connections.config import Settings
from ump_llm_connections.logs import JsonFormatter, logging_config

FIELDS = {"time", "level", "logger", "message"}


def test_text_is_uvicorns_config_with_the_servers_logger() -> None:
    expected = copy.deepcopy(LOGGING_CONFIG)
    expected["loggers"]["ump_llm_connections"] = {
        "handlers": ["default"],
        "level": "DEBUG",
        "propagate": False,
    }
    assert logging_config(Settings(log_level="debug")) == expected


def test_json_formats_every_handler_and_the_root() -> None:
    config = logging_config(Settings(log_format="json"))
    assert config["formatters"] == {
        "default": {"()": JsonFormatter},
        "access": {"()": JsonFormatter},
    }
    assert config["root"] == {"handlers": ["default"], "level": "WARNING"}
    assert config["loggers"]["ump_llm_connections"]["level"] == "INFO"


def test_a_record_is_one_line_of_json() -> None:
    try:
        raise ValueError("boom\nwith a second line")
    except ValueError:
        record = logging.LogRecord(
            "ump_llm_connections.x", logging.ERROR, __file__, 1, "failed %s: \ud800", ("it",), None
        )
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["logger"] == "ump_llm_connections.x"
    assert entry["message"] == "failed it: \ud800"
    assert entry["time"].endswith("Z")
    assert entry["exc_info"].startswith("Traceback") and "ValueError: boom" in entry["exc_info"]


@pytest.fixture
def json_server(fresh_database: Database, tmp_path: Path) -> Iterator[Server]:
    running = start_server(
        fresh_database,
        tmp_path / "data",
        UMP_LOG_FORMAT="json",
        UMP_LOG_LEVEL="debug",
        UMP_ACCESS_LOG="true",
        UMP_HEALTH_MONITOR="false",
        UMP_GATEWAY_REFRESH_S="0.05",
    )
    yield running
    running.stop()


def test_a_json_server_logs_json_and_no_echoed_key(json_server: Server) -> None:
    outputs: dict[str, str] = {}
    with Receiver() as receiver, json_server.client() as api, FakeOpenAI(api_key=KEY) as fake:
        webhook(api, f"{receiver.url}/all", ["*"])
        fake.behaviour = Behaviour.echo_credentials
        url = _connection(api, fake, "echoes")
        outputs["test"] = api.post(f"{url}/test").text
        chat = {"model": "echoes", "messages": [{"role": "user", "content": "hi"}]}
        outputs["gateway"] = _gateway_call(api, url, chat).text
        outputs["stream"] = _gateway_call(api, url, {**chat, "stream": True}).text
        outputs["models"] = api.get(f"{url}/models").text
        # Failing `auth` again and again, it is taken out: the log line quotes its last error.
        wait_for(lambda: api.post("/v1/chat/completions", json=chat).status_code == 403)
        outputs["last_error"] = str(api.get(url).json()["last_error"])  # the header's name
        # holds "Tenant" too: the masks of extra_headers are test_api_connections' matter
        outputs["health"] = api.get(f"{url}/health").text
        outputs["history"] = api.get(f"{url}/health-checks").text
        assert fake.requests and all(
            r.headers["authorization"] == f"Bearer {KEY}" for r in fake.requests
        )
        assert all(r.headers["x-tenant-token"] in HEADERS.values() for r in fake.requests)
        wait_for(lambda: any("test_failed" in hit.raw.decode() for hit in receiver.at("/all")))
        outputs["events"] = repr([hit.raw for hit in receiver.at("/all")])
    rows = json_server.db.query("SELECT error, response_preview FROM llm_connection_health_checks")
    assert rows
    outputs["health rows"] = repr(rows)
    json_server.stop()
    log = json_server.log()
    outputs["log"] = log
    assert {name: leaked(text) for name, text in outputs.items() if leaked(text)} == {}

    entries = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert all(set(entry) >= FIELDS for entry in entries), log
    loggers = {entry["logger"] for entry in entries}
    assert {"uvicorn.error", "uvicorn.access"} <= loggers
    assert any(name.startswith("ump_llm_connections.") for name in loggers)
    messages = [entry["message"] for entry in entries]
    assert any("created connection 'echoes'" in m for m in messages)
    deactivated = [m for m in messages if "deactivated by the health monitor" in m]
    assert deactivated and "401 from" in deactivated[0]
    assert "[redacted]" in deactivated[0]  # the echo reached the log, scrubbed
    assert any('"POST /api/connections HTTP/1.1" 201' in m for m in messages)  # access
