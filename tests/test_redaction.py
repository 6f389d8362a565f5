"""No secret, whole or in part, survives an upstream that echoes the request's credentials.

A hostile (or merely chatty) upstream answers 401/400/500 with a body quoting every header it
received behind padding of various lengths — 261 "x"s puts the key across the old 300-character
cut. Every place that text reaches is searched for every 6-character piece of the API key and
of the extra header values: the adapter's error, the test endpoint's answer, the gateway's error
(plain and streamed), ``last_error``, the health rows, the ``test_failed`` webhook and the log.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import aiohttp
import httpx
import pytest

from tests.conftest import Server
from tests.test_webhooks import Receiver, wait_for, webhook
from tests.upstreams.anthropic import FakeAnthropic
from tests.upstreams.base import Behaviour, FakeUpstream
from tests.upstreams.google import FakeGemini
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI
from ump_llm_connections.domain import SecretText
from ump_llm_connections.providers import adapter_for
from ump_llm_connections.providers.errors import ProviderError
from ump_llm_connections.providers.redact import redact
from ump_llm_connections.providers.target import Target, create_http_session
from ump_llm_connections.providers.types import ChatRequest, Message

KEY = "sk-proj-Redaction0Test1Key2abcdefghijklmnopqrstuvwxyz"
TENANT = "tenant-Secret-Value-9876543210"
HEADERS = {"X-Tenant-Token": TENANT}
SECRETS = (KEY, TENANT)
SEALED = tuple(SecretText(secret) for secret in SECRETS)
SEALED_HEADERS = {name: SecretText(value) for name, value in HEADERS.items()}
PADDINGS = [0, 261, 270, 290, 299, 5_000]
FORMATS = {
    "openai": (FakeOpenAI, "/v1"),
    "anthropic": (FakeAnthropic, "/v1"),
    "google": (FakeGemini, "/v1beta"),
    "ollama": (FakeOllama, ""),
}
HELLO = ChatRequest(messages=[Message("user", "Hello")], max_tokens=5)


def leaked(text: str) -> list[str]:
    """Every 6-character piece of a secret found in ``text``."""
    return [
        secret[i : i + 6]
        for secret in SECRETS
        for i in range(len(secret) - 5)
        if secret[i : i + 6] in text
    ]


# -- the function ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "x" * 261 + " Bearer " + KEY,
        f"Authorization: Bearer {KEY}",
        f"invalid key {KEY[5:25]}...",  # a piece of the key, quoted without a label
        f"{KEY[:10]}…{KEY[-8:]}",  # a mask longer than ours
        f'{{"x-tenant-token": "{TENANT}"}}',
        f"the header said {TENANT[3:12]}",
    ],
)
def test_redact_removes_every_piece_of_a_secret(text: str) -> None:
    redacted = redact(text, SEALED)
    assert leaked(redacted) == []
    assert "[redacted]" in redacted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer sk-other-key-123", "Authorization: Bearer [redacted]"),
        ("authorization=Basic dXNlcjpwYXNzd29yZA==", "authorization=Basic [redacted]"),
        ("{'x-api-key': 'abc123def456'}", "{'x-api-key': '[redacted]'}"),
        ("api-key: 0123456789", "api-key: [redacted]"),
        ("x-goog-api-key:AIzaSyExample", "x-goog-api-key:[redacted]"),
        ("?key=AIzaSyExample&alt=sse", "?key=[redacted]&alt=sse"),
        ('"X-Auth-Token": "tok-999"', '"X-Auth-Token": "[redacted]"'),
        ("Ocp-Apim-Subscription-Key: 1f2e3d", "Ocp-Apim-Subscription-Key: [redacted]"),
    ],
)
def test_redact_removes_credentials_it_does_not_know(text: str, expected: str) -> None:
    """An echoed credential is removed even when it is not this connection's."""
    assert redact(text, SEALED) == expected


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens: 4096 is more than this model allows",
        "The basic tier does not include this model",
        "model 'gpt-4o' not found; the token limit is 128000",
    ],
)
def test_redact_leaves_ordinary_words(text: str) -> None:
    assert redact(text, SEALED) == text


# -- every adapter --------------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    session = create_http_session()
    yield session
    await session.close()


@pytest.fixture(params=list(FORMATS))
def echoing(request: pytest.FixtureRequest) -> Iterator[tuple[FakeUpstream, Target]]:
    fake_class, path = FORMATS[str(request.param)]
    with fake_class(api_key=KEY) as fake:
        fake.behaviour = Behaviour.echo_credentials
        target = Target(
            api_format=request.param,
            base_url=fake.url + path,
            model="fake-model",
            api_key=SecretText(KEY),
            timeout=5,
            max_retries=0,
            extra_headers=SEALED_HEADERS,
        )
        yield fake, target


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("status", [401, 400, 500])
@pytest.mark.parametrize("headers", [SEALED_HEADERS, {}], ids=["extra-headers", "key-only"])
async def test_adapter_errors_carry_no_piece_of_a_secret(
    echoing: tuple[FakeUpstream, Target],
    http: aiohttp.ClientSession,
    padding: int,
    status: int,
    headers: dict[str, SecretText],
) -> None:
    """Key only, 261 "x"s put the key's first characters just before the old cut."""
    fake, target = echoing
    fake.echo_padding, fake.echo_status = padding, status
    adapter = adapter_for(replace(target, extra_headers=headers), http)
    messages = []
    for call in (adapter.chat(HELLO), adapter.list_models(), _drain(adapter.stream(HELLO))):
        with pytest.raises(ProviderError) as caught:
            await call
        messages.append(caught.value.message)
    # The echo carried the credentials: the upstream received them.
    assert all(any(KEY in v for v in r.headers.values()) for r in fake.requests)
    assert [leaked(m) for m in messages] == [[], [], []], messages


async def _drain(chunks: AsyncIterator[Any]) -> None:
    async for _ in chunks:
        pass


# -- the whole server -----------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def _connection(api: httpx.Client, fake: FakeOpenAI, name: str) -> str:
    """An OpenAI connection to ``fake`` with the key and the secret headers; its URL."""
    body = {
        "name": name,
        "connection_type": "openai",
        "base_url": f"{fake.url}/v1",
        "model_name": "fake-model",
        "api_key": KEY,
        "extra_headers": HEADERS,
        "max_retries": 0,
    }
    created = api.post("/api/connections", json=body)
    assert created.status_code == 201, created.text
    return f"/api/connections/{created.json()['id']}"


def _gateway_call(api: httpx.Client, url: str, chat: dict[str, Any]) -> httpx.Response:
    """A gateway call on a connection that passive health keeps taking out: failing with `auth`
    three times in a row deactivates it, and the probe that follows may land after an
    activation, so activate and call again until the call reaches the upstream."""
    deadline = time.monotonic() + 10
    while True:
        assert api.post(f"{url}/activate").status_code == 200
        answer = api.post("/v1/chat/completions", json=chat)
        inactive = answer.status_code == 403 and "connection_inactive" in answer.text
        if not inactive or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def test_no_piece_of_a_secret_reaches_any_output(
    api: httpx.Client, server: Server, receiver: Receiver
) -> None:
    seen = len(server.log())
    hook = webhook(api, f"{receiver.url}/failed", ["connection.test_failed"])
    with FakeOpenAI(api_key=KEY) as fake:
        fake.behaviour = Behaviour.echo_credentials
        url = _connection(api, fake, "echoes")
        outputs: dict[str, str] = {}
        for padding in PADDINGS:
            fake.echo_padding = padding
            tested = api.post(f"{url}/test")
            assert tested.json()["success"] is False
            outputs[f"test {padding}"] = tested.text
            chat = {"model": "echoes", "messages": [{"role": "user", "content": "hi"}]}
            plain = _gateway_call(api, url, chat)
            assert plain.status_code == 502, plain.text
            outputs[f"gateway {padding}"] = plain.text
            streamed = _gateway_call(api, url, {**chat, "stream": True})
            assert "connection_inactive" not in streamed.text
            outputs[f"stream {padding}"] = streamed.text
            # (Only last_error: showing extra_headers masked is another matter.)
            outputs[f"last_error {padding}"] = str(api.get(url).json()["last_error"])
            outputs[f"health {padding}"] = api.get(f"{url}/health").text
        # The echo carried the credentials: the upstream received them.
        assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in fake.requests)
        assert all(r.headers["x-tenant-token"] == TENANT for r in fake.requests)
        outputs["models"] = api.get(f"{url}/models").text
    outputs["history"] = api.get(f"{url}/health-checks", params={"limit": 100}).text
    rows = server.db.query("SELECT error, response_preview FROM llm_connection_health_checks")
    assert len(rows) >= len(PADDINGS)  # the tests, and the gateway's passive checks
    outputs["health rows"] = repr(rows)
    wait_for(lambda: len(receiver.at("/failed")) >= len(PADDINGS))
    outputs["webhooks"] = repr([hit.raw for hit in receiver.at("/failed")])
    deliveries = api.get(f"/api/webhooks/{hook['id']}/deliveries").text
    outputs["deliveries"] = deliveries
    outputs["log"] = server.log()[seen:]
    assert {name: leaked(text) for name, text in outputs.items() if leaked(text)} == {}
    api.delete(f"/api/webhooks/{hook['id']}")


def test_a_test_preview_is_redacted_too(api: httpx.Client, server: Server) -> None:
    """An answer that repeats the key (a model told to, a proxy's debug page) shows no piece of
    it in the test's preview, in its health row or in the history."""
    with FakeOpenAI(api_key=KEY) as fake:
        fake.reply.text = f"Sure! The header was: {KEY[:30]} and {TENANT[4:]}"
        url = _connection(api, fake, "repeats")
        tested = api.post(f"{url}/test").json()
    assert tested["success"] is True
    assert tested["response_preview"].startswith("Sure! The header was: [redacted]")
    rows = server.db.query("SELECT response_preview FROM llm_connection_health_checks")
    history = api.get(f"{url}/health-checks").text
    assert leaked(tested["response_preview"] + repr(rows) + history) == []
