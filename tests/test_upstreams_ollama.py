"""The fake Ollama server, checked with the official ``ollama`` client (and raw HTTP where the
client hides the wire)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import orjson
import pytest

from tests.upstreams.base import Behaviour, ToolCall
from tests.upstreams.ollama import FakeOllama

KEY = "ollama-fake-key-000000000000"
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hello, how are you?"},
]
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.fixture(autouse=True)
def no_ollama_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client reads OLLAMA_API_KEY and OLLAMA_HOST; the tests say everything themselves."""
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    monkeypatch.delenv("OLLAMA_HOST", raising=False)


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(api_key=None, delay=0.3) as server:
        yield server


@pytest.fixture
def keyed() -> Iterator[FakeOllama]:
    with FakeOllama(api_key=KEY) as server:
        yield server


def client(fake: FakeOllama, **kwargs: Any) -> ollama.Client:
    return ollama.Client(host=fake.url, timeout=kwargs.pop("timeout", 5), **kwargs)


def test_chat(fake: FakeOllama) -> None:
    answer = client(fake).chat(
        model="fake-model",
        messages=MESSAGES,
        stream=False,
        options={"temperature": 0.2, "num_predict": 64, "stop": ["\n\n"]},
        format="json",
        keep_alive="5m",
    )
    assert answer.message.role == "assistant"
    assert answer.message.content == fake.reply.text
    assert answer.model == "fake-model"
    assert answer.created_at == "2025-01-01T00:00:00Z"
    assert (answer.done, answer.done_reason) == (True, "stop")
    assert (answer.prompt_eval_count, answer.eval_count) == (12, 9)
    assert answer.total_duration and answer.eval_duration

    recorded = fake.requests[-1]
    assert (recorded.method, recorded.path) == ("POST", "/api/chat")
    assert "authorization" not in recorded.headers
    assert recorded.body["stream"] is False
    assert recorded.body["options"] == {"temperature": 0.2, "num_predict": 64, "stop": ["\n\n"]}
    assert recorded.body["format"] == "json"
    assert recorded.body["keep_alive"] == "5m"
    assert recorded.body["messages"] == MESSAGES


def test_chat_length_and_no_counts(fake: FakeOllama) -> None:
    fake.reply.finish_reason = "length"
    fake.reply.report_usage = False
    answer = client(fake).chat(model="fake-model:latest", messages=MESSAGES, stream=False)
    assert answer.done_reason == "length"
    assert answer.prompt_eval_count is None
    assert answer.eval_count is None
    assert answer.model == "fake-model:latest"  # a tag names the same model; echoed as sent


def test_stream(fake: FakeOllama) -> None:
    chunks = list(client(fake).chat(model="fake-model", messages=MESSAGES, stream=True))
    assert "".join(c.message.content or "" for c in chunks) == fake.reply.text
    assert len(chunks) == len(fake.reply.words()) + 1
    assert all(c.done is False and c.done_reason is None for c in chunks[:-1])
    last = chunks[-1]
    assert (last.done, last.done_reason, last.message.content) == (True, "stop", "")
    assert (last.prompt_eval_count, last.eval_count) == (12, 9)
    assert fake.requests[-1].body["stream"] is True


def test_tool_calls_plain_and_streamed(fake: FakeOllama) -> None:
    fake.reply.tool_call = ToolCall("get_weather", {"city": "Paris"})
    answer = client(fake).chat(model="fake-model", messages=MESSAGES, tools=TOOLS, stream=False)
    assert answer.message.content == ""
    (call,) = answer.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert call.function.arguments == {"city": "Paris"}  # an object, not a JSON string
    assert answer.done_reason == "stop"
    assert fake.requests[-1].body["tools"][0]["function"]["name"] == "get_weather"

    chunks = list(
        client(fake).chat(model="fake-model", messages=MESSAGES, tools=TOOLS, stream=True)
    )
    calls = [t for c in chunks for t in c.message.tool_calls or []]
    assert [(t.function.name, dict(t.function.arguments)) for t in calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert chunks[-1].done is True

    # Without tools in the request the same reply is text.
    plain = client(fake).chat(model="fake-model", messages=MESSAGES, stream=False)
    assert plain.message.content == fake.reply.text
    assert plain.message.tool_calls is None


def test_tool_results_in_history(fake: FakeOllama) -> None:
    history: list[dict[str, Any]] = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "18 °C, sunny", "tool_name": "get_weather"},
    ]
    answer = client(fake).chat(model="fake-model", messages=history, tools=TOOLS, stream=False)
    assert answer.message.content == fake.reply.text
    sent = fake.requests[-1].body["messages"]
    assert sent[2]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert sent[3] == {"role": "tool", "content": "18 °C, sunny", "tool_name": "get_weather"}


def test_models(fake: FakeOllama) -> None:
    listed = client(fake).list().models
    assert [m.model for m in listed] == ["fake-model:latest", "fake-model-large:latest"]
    assert listed[0].details is not None
    assert listed[0].details.format == "gguf"
    assert listed[0].details.quantization_level == "Q4_K_M"
    assert listed[0].size and listed[0].digest and listed[0].modified_at
    assert fake.requests[-1].path == "/api/tags"


async def test_async_client(fake: FakeOllama) -> None:
    aclient = ollama.AsyncClient(host=fake.url, timeout=5)
    answer = await aclient.chat(model="fake-model", messages=MESSAGES, stream=False)
    assert answer.message.content == fake.reply.text
    text = ""
    last: ollama.ChatResponse | None = None
    async for chunk in await aclient.chat(model="fake-model", messages=MESSAGES, stream=True):
        text += chunk.message.content or ""
        last = chunk
    assert text == fake.reply.text
    assert last is not None
    assert (last.done, last.eval_count) == (True, 9)
    assert len((await aclient.list()).models) == 2
    fake.behaviour = Behaviour.rate_limited

    async def drain() -> list[ollama.ChatResponse]:
        stream = await aclient.chat(model="fake-model", messages=MESSAGES, stream=True)
        return [chunk async for chunk in stream]

    with pytest.raises(ollama.ResponseError) as caught:
        await drain()
    assert caught.value.status_code == 429


def test_bearer_key(keyed: FakeOllama) -> None:
    good = client(keyed, headers={"Authorization": f"Bearer {KEY}"})
    assert good.chat(model="fake-model", messages=MESSAGES).message.content == keyed.reply.text
    assert keyed.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert len(good.list().models) == 2

    for headers in ({}, {"Authorization": "Bearer wrong"}):
        bad = client(keyed, headers=headers)
        with pytest.raises(ollama.ResponseError) as caught:
            bad.chat(model="fake-model", messages=MESSAGES)
        assert (caught.value.status_code, caught.value.error) == (401, "unauthorized")
        with pytest.raises(ollama.ResponseError) as caught:
            bad.list()
        assert caught.value.status_code == 401


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("behaviour", "status"),
    [
        (Behaviour.unauthorized, 401),
        (Behaviour.model_not_found, 404),
        (Behaviour.rate_limited, 429),
        (Behaviour.server_error, 500),
    ],
)
def test_errors(fake: FakeOllama, behaviour: Behaviour, status: int, stream: bool) -> None:
    fake.script = [behaviour]

    def call() -> None:
        if stream:
            list(client(fake).chat(model="fake-model", messages=MESSAGES, stream=True))
        else:
            client(fake).chat(model="fake-model", messages=MESSAGES, stream=False)

    with pytest.raises(ollama.ResponseError) as caught:
        call()
    assert caught.value.status_code == status
    assert isinstance(caught.value.error, str)
    assert caught.value.error
    # The script is used up: the next request is answered.
    assert client(fake).chat(model="fake-model", messages=MESSAGES).done is True


def test_unknown_model(fake: FakeOllama) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client(fake).chat(model="no-such-model", messages=MESSAGES)
    assert caught.value.status_code == 404
    assert caught.value.error == "model 'no-such-model' not found, try pulling it first"


def test_wire_details(fake: FakeOllama) -> None:
    with httpx.Client(base_url=fake.url, timeout=5) as http:
        # Ollama streams when the body says nothing about it.
        streamed = http.post("/api/chat", json={"model": "fake-model", "messages": MESSAGES})
        assert streamed.status_code == 200
        assert streamed.headers["content-type"] == "application/x-ndjson"
        lines = [orjson.loads(line) for line in streamed.text.splitlines()]
        assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
        assert "".join(line["message"]["content"] for line in lines) == fake.reply.text

        assert http.get("/api/version").json() == {"version": "0.6.0"}
        assert http.get("/").text == "Ollama is running"

        loaded = http.post("/api/chat", json={"model": "fake-model", "stream": False}).json()
        assert (loaded["done"], loaded["done_reason"]) == (True, "load")

        fake.script = [Behaviour.rate_limited]
        limited = http.post("/api/chat", json={"model": "fake-model", "messages": MESSAGES})
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1"
        assert set(limited.json()) == {"error"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"messages": MESSAGES}, "model is required"),
        ({"model": "fake-model", "messages": [{"role": "robot", "content": "hi"}]}, "invalid role"),
        (
            {"model": "fake-model", "messages": [{"role": "user", "content": [{"text": "hi"}]}]},
            "cannot unmarshal array",
        ),
        (
            {
                "model": "fake-model",
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"function": {"name": "f", "arguments": '{"a":1}'}}],
                    }
                ],
            },
            "cannot unmarshal string",
        ),
        ({"model": "fake-model", "options": {"temperature": "hot"}}, "temperature"),
        ({"model": "fake-model", "format": "yaml"}, "invalid format"),
    ],
)
def test_bad_requests(fake: FakeOllama, body: dict[str, Any], error: str) -> None:
    answer = httpx.post(f"{fake.url}/api/chat", json=body, timeout=5)
    assert answer.status_code == 400
    assert error in answer.json()["error"]


def test_hang_times_out(fake: FakeOllama) -> None:
    fake.behaviour = Behaviour.hang
    with pytest.raises(httpx.TimeoutException):
        client(fake, timeout=0.5).chat(model="fake-model", messages=MESSAGES)


def test_slow_first_token(fake: FakeOllama) -> None:
    fake.behaviour = Behaviour.slow_first_token
    started = time.monotonic()
    chunks = client(fake).chat(model="fake-model", messages=MESSAGES, stream=True)
    first = next(iter(chunks))
    assert time.monotonic() - started >= fake.delay
    assert first.done is False


def test_malformed_and_cut_stream(fake: FakeOllama) -> None:
    fake.behaviour = Behaviour.malformed
    with pytest.raises(json.JSONDecodeError):
        client(fake).chat(model="fake-model", messages=MESSAGES, stream=False)
    with pytest.raises(json.JSONDecodeError):
        list(client(fake).chat(model="fake-model", messages=MESSAGES, stream=True))

    fake.behaviour = Behaviour.cut_stream
    chunks = client(fake).chat(model="fake-model", messages=MESSAGES, stream=True)
    half = fake.reply.words()[: len(fake.reply.words()) // 2]
    assert [next(chunks).message.content for _ in half] == half
    with pytest.raises(httpx.RemoteProtocolError):
        next(chunks)
