"""The fake Anthropic server, checked with the official ``anthropic`` SDK."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import anthropic
import httpx2
import pytest
from anthropic.types import MessageParam, TextBlock, ToolParam, ToolUseBlock

from tests.upstreams.anthropic import FakeAnthropic
from tests.upstreams.base import Behaviour, ToolCall

KEY = "sk-ant-fake-key-000000000000"
MESSAGES: list[MessageParam] = [{"role": "user", "content": "Hello, how are you?"}]
TOOLS: list[ToolParam] = [
    {
        "name": "get_weather",
        "description": "The weather in a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=KEY) as server:
        yield server


def client(fake: FakeAnthropic, *, key: str = KEY, timeout: float = 5) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=fake.url, max_retries=0, timeout=timeout)


def text_of(message: anthropic.types.Message) -> str:
    return "".join(b.text for b in message.content if isinstance(b, TextBlock))


def test_message(fake: FakeAnthropic) -> None:
    answer = client(fake).messages.create(model="fake-model", max_tokens=100, messages=MESSAGES)
    assert answer.id == "msg_fake"
    assert answer.role == "assistant"
    assert answer.model == "fake-model"
    assert text_of(answer) == fake.reply.text
    assert answer.stop_reason == "end_turn"
    assert answer.stop_sequence is None
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (12, 9)
    recorded = fake.requests[-1]
    assert recorded.path == "/v1/messages"
    # The official SDK (2.x) sends ``api_key`` as a bearer token, not as x-api-key.
    assert recorded.headers["authorization"] == f"Bearer {KEY}"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", recorded.headers["anthropic-version"])
    assert recorded.body["max_tokens"] == 100


def test_x_api_key_header(fake: FakeAnthropic) -> None:
    """The documented way: the key in x-api-key, which decides alone when present."""
    as_documented: dict[str, str | anthropic.Omit] = {
        "Authorization": anthropic.Omit(),
        "x-api-key": KEY,
    }
    answer = client(fake).messages.create(
        model="fake-model", max_tokens=100, messages=MESSAGES, extra_headers=as_documented
    )
    assert text_of(answer) == fake.reply.text
    assert fake.requests[-1].headers["x-api-key"] == KEY
    assert "authorization" not in fake.requests[-1].headers
    refused: list[dict[str, str | anthropic.Omit]] = [
        {"x-api-key": "sk-ant-wrong"},  # wrong x-api-key beside a right bearer token
        {"Authorization": anthropic.Omit()},  # no key at all
    ]
    for headers in refused:
        with pytest.raises(anthropic.AuthenticationError):
            client(fake).messages.create(
                model="fake-model", max_tokens=100, messages=MESSAGES, extra_headers=headers
            )


def test_system_prompt_and_parameters(fake: FakeAnthropic) -> None:
    answer = client(fake).messages.create(
        model="fake-model",
        max_tokens=50,
        system="Be brief.",
        messages=MESSAGES,
        stop_sequences=["\n\nHuman:"],
        extra_body={"temperature": 0.2},  # this SDK's create() has no temperature parameter
    )
    assert text_of(answer) == fake.reply.text
    body = fake.requests[-1].body
    assert body["system"] == "Be brief."
    assert all(m["role"] != "system" for m in body["messages"])
    assert (body["temperature"], body["stop_sequences"]) == (0.2, ["\n\nHuman:"])

    client(fake).messages.create(
        model="fake-model",
        max_tokens=50,
        system=[{"type": "text", "text": "Be brief."}],
        messages=MESSAGES,
    )
    assert fake.requests[-1].body["system"] == [{"type": "text", "text": "Be brief."}]

    # The SDK also types a system turn inside ``messages``.
    answer = client(fake).messages.create(
        model="fake-model",
        max_tokens=50,
        messages=[{"role": "system", "content": "Be brief."}, *MESSAGES],
    )
    assert text_of(answer) == fake.reply.text
    assert fake.requests[-1].body["messages"][0]["role"] == "system"


def test_stop_reasons(fake: FakeAnthropic) -> None:
    fake.reply.finish_reason = "length"
    answer = client(fake).messages.create(model="fake-model", max_tokens=9, messages=MESSAGES)
    assert answer.stop_reason == "max_tokens"
    fake.reply.finish_reason = "stop_sequence"
    answer = client(fake).messages.create(
        model="fake-model", max_tokens=9, messages=MESSAGES, stop_sequences=["END"]
    )
    assert (answer.stop_reason, answer.stop_sequence) == ("stop_sequence", "END")


def test_usage_always_reported(fake: FakeAnthropic) -> None:
    fake.reply.report_usage = False
    answer = client(fake).messages.create(model="fake-model", max_tokens=100, messages=MESSAGES)
    assert answer.usage.output_tokens == 9


def test_stream_helper(fake: FakeAnthropic) -> None:
    with client(fake).messages.stream(
        model="fake-model", max_tokens=100, system="Be brief.", messages=MESSAGES
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == fake.reply.text
    assert text_of(final) == fake.reply.text
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 9)
    assert fake.requests[-1].body["stream"] is True


def test_stream_raw_events(fake: FakeAnthropic) -> None:
    events = list(
        client(fake).messages.create(
            model="fake-model", max_tokens=100, messages=MESSAGES, stream=True
        )
    )
    kinds = [e.type for e in events]  # the SDK skips ``ping``
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert len(kinds[2:-3]) == len(fake.reply.words())
    start, delta = events[0], events[-2]
    assert start.type == "message_start"
    assert start.message.content == []
    assert (start.message.usage.input_tokens, start.message.usage.output_tokens) == (12, 1)
    assert delta.type == "message_delta"
    assert (delta.delta.stop_reason, delta.usage.output_tokens) == ("end_turn", 9)


def test_tool_use_plain_and_streamed(fake: FakeAnthropic) -> None:
    fake.reply.tool_call = ToolCall("get_weather", {"city": "Paris"}, id="toolu_fake_1")
    answer = client(fake).messages.create(
        model="fake-model", max_tokens=100, messages=MESSAGES, tools=TOOLS
    )
    (block,) = answer.content
    assert isinstance(block, ToolUseBlock)
    assert (block.id, block.name, block.input) == ("toolu_fake_1", "get_weather", {"city": "Paris"})
    assert answer.stop_reason == "tool_use"
    assert fake.requests[-1].body["tools"][0]["input_schema"]["type"] == "object"

    with client(fake).messages.stream(
        model="fake-model", max_tokens=100, messages=MESSAGES, tools=TOOLS
    ) as stream:
        final = stream.get_final_message()
    (block,) = final.content
    assert isinstance(block, ToolUseBlock)
    assert (block.name, block.input) == ("get_weather", {"city": "Paris"})
    assert final.stop_reason == "tool_use"

    partial = ""
    for event in client(fake).messages.create(
        model="fake-model", max_tokens=100, messages=MESSAGES, tools=TOOLS, stream=True
    ):
        if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
            partial += event.delta.partial_json
    assert partial == '{"city":"Paris"}'

    # No tools offered, or tool_choice none: plain text.
    answer = client(fake).messages.create(model="fake-model", max_tokens=100, messages=MESSAGES)
    assert text_of(answer) == fake.reply.text
    answer = client(fake).messages.create(
        model="fake-model",
        max_tokens=100,
        messages=MESSAGES,
        tools=TOOLS,
        tool_choice={"type": "none"},
    )
    assert answer.stop_reason == "end_turn"


def test_tool_result_turn(fake: FakeAnthropic) -> None:
    messages: list[MessageParam] = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"}],
        },
    ]
    answer = client(fake).messages.create(
        model="fake-model", max_tokens=100, messages=messages, tools=TOOLS
    )
    assert text_of(answer) == fake.reply.text
    assert fake.requests[-1].body["messages"][2]["content"][0]["type"] == "tool_result"


def test_models(fake: FakeAnthropic) -> None:
    models = list(client(fake).models.list())
    assert [m.id for m in models] == fake.models
    assert models[0].type == "model"
    assert models[0].display_name == "fake-model"
    assert client(fake).models.retrieve("fake-model-large").id == "fake-model-large"
    with pytest.raises(anthropic.NotFoundError):
        client(fake).models.retrieve("no-such-model")


@pytest.mark.parametrize(
    ("behaviour", "error", "kind"),
    [
        (Behaviour.unauthorized, anthropic.AuthenticationError, "authentication_error"),
        (Behaviour.model_not_found, anthropic.NotFoundError, "not_found_error"),
        (Behaviour.rate_limited, anthropic.RateLimitError, "rate_limit_error"),
        (Behaviour.server_error, anthropic.InternalServerError, "api_error"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_errors(
    fake: FakeAnthropic,
    behaviour: Behaviour,
    error: type[anthropic.APIStatusError],
    kind: str,
    stream: bool,
) -> None:
    fake.behaviour = behaviour
    with pytest.raises(error) as caught:
        client(fake).messages.create(
            model="fake-model", max_tokens=100, messages=MESSAGES, stream=stream
        )
    assert caught.value.body == {
        "type": "error",
        "error": {"type": kind, "message": caught.value.body["error"]["message"]},  # type: ignore[index]
    }
    if behaviour is Behaviour.rate_limited:
        assert caught.value.response.headers["retry-after"] == "1"


def test_script_then_recovers(fake: FakeAnthropic) -> None:
    fake.script = [Behaviour.server_error]
    with pytest.raises(anthropic.InternalServerError):
        client(fake).messages.create(model="fake-model", max_tokens=100, messages=MESSAGES)
    answer = client(fake).messages.create(model="fake-model", max_tokens=100, messages=MESSAGES)
    assert text_of(answer) == fake.reply.text


def test_wrong_key_and_unknown_model(fake: FakeAnthropic) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        client(fake, key="sk-ant-wrong").messages.create(
            model="fake-model", max_tokens=100, messages=MESSAGES
        )
    with pytest.raises(anthropic.NotFoundError):
        client(fake).messages.create(model="no-such-model", max_tokens=100, messages=MESSAGES)


def test_invalid_requests(fake: FakeAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(fake).messages.create(
            model="fake-model",
            max_tokens=100,
            messages=MESSAGES,
            extra_headers={"anthropic-version": anthropic.Omit()},
        )
    assert caught.value.type == "invalid_request_error"
    assert "anthropic-version" not in fake.requests[-1].headers

    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        client(fake).post(
            "/v1/messages",
            body={"model": "fake-model", "messages": MESSAGES},
            cast_to=anthropic.types.Message,
        )
    with pytest.raises(anthropic.BadRequestError, match="role"):
        client(fake).post(
            "/v1/messages",
            body={
                "model": "fake-model",
                "max_tokens": 10,
                "messages": [{"role": "tool", "content": "Sunny"}],
            },
            cast_to=anthropic.types.Message,
        )


def test_hang_times_out(fake: FakeAnthropic) -> None:
    fake.behaviour = Behaviour.hang
    with pytest.raises(anthropic.APITimeoutError):
        client(fake, timeout=0.5).messages.create(
            model="fake-model", max_tokens=100, messages=MESSAGES
        )


def test_slow_first_token(fake: FakeAnthropic) -> None:
    fake.behaviour = Behaviour.slow_first_token
    fake.delay = 0.2
    answer = client(fake).messages.create(model="fake-model", max_tokens=100, messages=MESSAGES)
    assert text_of(answer) == fake.reply.text


def test_malformed_and_cut_stream(fake: FakeAnthropic) -> None:
    fake.behaviour = Behaviour.malformed
    with pytest.raises(json.JSONDecodeError):
        client(fake).messages.create(model="fake-model", max_tokens=100, messages=MESSAGES)
    with pytest.raises(json.JSONDecodeError):
        list(
            client(fake).messages.create(
                model="fake-model", max_tokens=100, messages=MESSAGES, stream=True
            )
        )

    fake.behaviour = Behaviour.cut_stream
    received: list[str] = []
    # This SDK lets the transport's error through unwrapped when a stream breaks mid-way.
    with (
        client(fake).messages.stream(
            model="fake-model", max_tokens=100, messages=MESSAGES
        ) as stream,
        pytest.raises(httpx2.RemoteProtocolError),
    ):
        received.extend(stream.text_stream)  # keeps what came before the cut
    assert "".join(received) == "".join(fake.reply.words()[: len(fake.reply.words()) // 2])

    fake.reply.tool_call = ToolCall("get_weather", {"city": "Paris"})
    with pytest.raises(httpx2.RemoteProtocolError):
        list(
            client(fake).messages.create(
                model="fake-model", max_tokens=100, messages=MESSAGES, tools=TOOLS, stream=True
            )
        )
