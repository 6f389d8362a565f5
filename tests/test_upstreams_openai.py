"""The fake OpenAI server, checked with the official ``openai`` SDK."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.upstreams.base import Behaviour, ToolCall
from tests.upstreams.openai import FakeOpenAI

KEY = "sk-fake-openai-key-000000000000"
MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hello, how are you?"},
]
TOOLS: list[openai.types.chat.ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as server:
        yield server


def client(fake: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=f"{fake.url}/v1", max_retries=0, timeout=5)


def test_chat(fake: FakeOpenAI) -> None:
    answer = client(fake).chat.completions.create(model="fake-model", messages=MESSAGES)
    assert answer.choices[0].message.content == fake.reply.text
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (12, 9)
    assert fake.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert fake.requests[-1].body["messages"][0]["role"] == "system"


def test_stream_with_usage(fake: FakeOpenAI) -> None:
    stream = client(fake).chat.completions.create(
        model="fake-model",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == fake.reply.text
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 9


def test_tool_calls_plain_and_streamed(fake: FakeOpenAI) -> None:
    fake.reply.tool_call = ToolCall("get_weather", {"city": "Paris"})
    answer = client(fake).chat.completions.create(
        model="fake-model", messages=MESSAGES, tools=TOOLS
    )
    (call,) = answer.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"Paris"}'
    assert answer.choices[0].finish_reason == "tool_calls"

    stream = client(fake).chat.completions.create(
        model="fake-model", messages=MESSAGES, tools=TOOLS, stream=True
    )
    arguments = ""
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or []:
            arguments += (delta.function.arguments or "") if delta.function else ""
    assert arguments == '{"city":"Paris"}'


def test_models(fake: FakeOpenAI) -> None:
    assert [m.id for m in client(fake).models.list()] == fake.models


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        (Behaviour.unauthorized, openai.AuthenticationError),
        (Behaviour.model_not_found, openai.NotFoundError),
        (Behaviour.rate_limited, openai.RateLimitError),
        (Behaviour.server_error, openai.InternalServerError),
    ],
)
def test_errors(fake: FakeOpenAI, behaviour: Behaviour, error: type[Exception]) -> None:
    fake.behaviour = behaviour
    with pytest.raises(error) as caught:
        client(fake).chat.completions.create(model="fake-model", messages=MESSAGES)
    if behaviour is Behaviour.rate_limited:
        assert caught.value.response.headers["retry-after"] == "1"  # type: ignore[attr-defined]


def test_wrong_key_and_unknown_model(fake: FakeOpenAI) -> None:
    wrong = openai.OpenAI(api_key="sk-wrong", base_url=f"{fake.url}/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="fake-model", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError):
        client(fake).chat.completions.create(model="no-such-model", messages=MESSAGES)


def test_hang_times_out(fake: FakeOpenAI) -> None:
    fake.behaviour = Behaviour.hang
    slow = openai.OpenAI(api_key=KEY, base_url=f"{fake.url}/v1", max_retries=0, timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        slow.chat.completions.create(model="fake-model", messages=MESSAGES)


def test_malformed_and_cut_stream(fake: FakeOpenAI) -> None:
    fake.behaviour = Behaviour.malformed
    with pytest.raises(Exception):  # noqa: B017, PT011 - the SDK raises a JSON decode error
        client(fake).chat.completions.create(model="fake-model", messages=MESSAGES)
    fake.behaviour = Behaviour.cut_stream
    with pytest.raises(openai.APIConnectionError):
        list(
            client(fake).chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
        )


def test_azure_deployment_route(fake: FakeOpenAI) -> None:
    azure = openai.AzureOpenAI(
        api_key=KEY,
        azure_endpoint=fake.url,
        api_version="2024-10-21",
        azure_deployment="fake-model",
        max_retries=0,
    )
    answer = azure.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert answer.choices[0].message.content == fake.reply.text
    recorded = fake.requests[-1]
    assert recorded.path == "/openai/deployments/fake-model/chat/completions"
    assert recorded.query["api-version"] == "2024-10-21"
    assert recorded.headers["api-key"] == KEY
