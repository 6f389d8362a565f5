"""A stream whose client goes away stops its upstream; a stopping server ends its streams.

The fake upstream streams forever (without pauses, or slowly) and notices when the gateway
closes its connection.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Database, Server, make_database, start_server
from tests.test_gateway import HELLO, KEY, connect, usage_rows
from tests.upstreams.base import Behaviour
from tests.upstreams.openai import FakeOpenAI

OPENAI = {"connection_type": "openai", "path": "/v1"}
ENDLESS = (Behaviour.endless_stream, Behaviour.slow_endless_stream)
GONE_WITHIN_S = 10  # generous: the upstream sees its connection closed well before this


@pytest.fixture
def endless(request: pytest.FixtureRequest) -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY, delay=0.2) as fake:
        fake.behaviour = request.param
        yield fake


def open_stream(client: httpx.Client, model: str = "gw") -> httpx.Response:
    body = {"model": model, "messages": HELLO, "stream": True}
    request = client.build_request("POST", "/v1/chat/completions", json=body)
    response = client.send(request, stream=True)
    assert response.status_code == 200, response.read()
    return response


def read_events(lines: Iterator[str], count: int) -> list[Any]:
    events: list[Any] = []
    for line in lines:
        if line.startswith("data: "):
            events.append(line[6:] if line == "data: [DONE]" else orjson.loads(line[6:]))
            if len(events) >= count:
                break
    return events


@pytest.mark.parametrize("endless", ENDLESS, indirect=True)
def test_closing_the_client_stops_the_upstream(
    api: httpx.Client, server: Server, endless: FakeOpenAI
) -> None:
    connect(api, endless, OPENAI)
    with server.client() as client:
        response = open_stream(client)
        assert len(read_events(response.iter_lines(), 3)) == 3
        response.close()
    assert endless.streams.closed.wait(GONE_WITHIN_S), "the gateway kept reading the upstream"
    (row,) = usage_rows(server, 1)
    assert row[3] in (False, 0)  # success
    assert row[4] == "client_closed"


@pytest.fixture
def own_server(fresh_database: Database, tmp_path: Path) -> Iterator[Server]:
    running = start_server(fresh_database, tmp_path / "data", UMP_SHUTDOWN_GRACE_S="5")
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()


def wait_exit(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


@pytest.mark.parametrize("endless", [Behaviour.endless_stream], indirect=True)
def test_sigterm_ends_open_streams_with_an_error_event(
    own_server: Server, endless: FakeOpenAI
) -> None:
    with own_server.client() as api:
        connect(api, endless, OPENAI)
    with own_server.client() as client:
        response = open_stream(client)
        lines = response.iter_lines()
        assert len(read_events(lines, 2)) == 2
        own_server.process.send_signal(signal.SIGTERM)
        last = None
        deadline = time.monotonic() + 60  # far beyond the 5 s grace: the stream must end
        for line in lines:
            assert time.monotonic() < deadline, "the stream outlived the server's grace period"
            if line.startswith("data: "):
                last = line[6:]
        response.close()
    assert last is not None
    error = orjson.loads(last)["error"]
    assert error["type"] == "server_error"
    assert error["code"] == "server_shutdown"
    # The grace period is 5 s; anything short of a minute means it did not wait for the upstream.
    assert wait_exit(own_server.process, 60) is not None, own_server.log()
    assert endless.streams.closed.wait(GONE_WITHIN_S)
    rows = own_server.db.query("SELECT success, error_kind FROM llm_connection_usage")
    assert [(bool(s), k) for s, k in rows] == [(False, "server_shutdown")]


def test_a_slow_reader_still_gets_the_shutdown_event(tmp_path: Path) -> None:
    """A client that stops reading past the grace period and the app's own stop (1 s + 5 s)
    still gets the stream's last event: the process waits for its connections to flush."""
    for db in make_database("sqlite", tmp_path):
        server = start_server(db, tmp_path / "data", UMP_SHUTDOWN_GRACE_S="1")
        try:
            with FakeOpenAI(api_key=KEY) as fake, server.client() as client:
                fake.behaviour = Behaviour.endless_stream
                with server.client() as api:
                    connect(api, fake, OPENAI)
                response = open_stream(client)
                lines = response.iter_lines()
                assert len(read_events(lines, 2)) == 2
                server.process.send_signal(signal.SIGTERM)
                time.sleep(8)  # the buffers fill; the server has stopped all but its sockets
                last = None
                with contextlib.suppress(httpx.RemoteProtocolError):
                    for line in lines:
                        if line.startswith("data: "):
                            last = line[6:]
                response.close()
            assert last is not None, server.log()
            assert orjson.loads(last)["error"]["code"] == "server_shutdown", server.log()
            assert wait_exit(server.process, 30) is not None, server.log()
            # The stop reached the stream while it waited on the full socket, not the upstream:
            # the call is still recorded as the server's doing, not the client's.
            rows = server.db.query("SELECT success, error_kind FROM llm_connection_usage")
            assert [(bool(s), k) for s, k in rows] == [(False, "server_shutdown")]
        finally:
            if server.process.poll() is None:
                server.process.kill()
                server.process.wait()


def wait_for_log(server: Server, text: str) -> None:
    deadline = time.monotonic() + 30
    while text not in server.log():
        assert time.monotonic() < deadline, f"never logged {text!r}:\n{server.log()}"
        time.sleep(0.1)


def test_a_second_sigterm_stops_at_once(fresh_database: Database, tmp_path: Path) -> None:
    """A call the grace period would wait for (two minutes here) does not hold a second
    SIGTERM."""
    server = start_server(fresh_database, tmp_path / "data", UMP_SHUTDOWN_GRACE_S="120")
    try:
        with FakeOpenAI(api_key=KEY) as fake:
            fake.behaviour = Behaviour.hang
            with server.client() as api:
                connect(api, fake, OPENAI)
            body = {"model": "gw", "messages": HELLO}
            url = f"{server.url}/v1/chat/completions"
            caller = threading.Thread(
                target=lambda: _ignore_errors(lambda: httpx.post(url, json=body, timeout=300)),
                daemon=True,
            )
            caller.start()
            deadline = time.monotonic() + 30
            while not any(r.path == "/v1/chat/completions" for r in fake.requests):
                assert time.monotonic() < deadline, "the call never reached the upstream"
                time.sleep(0.05)
            server.process.send_signal(signal.SIGTERM)
            wait_for_log(server, "Waiting for connections to close")
            assert server.process.poll() is None  # the first signal waits for the call
            server.process.send_signal(signal.SIGTERM)
            assert wait_exit(server.process, 30) is not None, server.log()
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def _ignore_errors(call: Callable[[], object]) -> None:
    with contextlib.suppress(httpx.HTTPError):
        call()
