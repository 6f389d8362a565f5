"""The gateway's OpenAI wire format, read and written without a server."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ump_llm_connections.gateway.wire import (
    ChunkWriter,
    WireError,
    error_json,
    parse_request,
    render_response,
)
from ump_llm_connections.providers.types import (
    ChatResponse,
    Message,
    StreamChunk,
    Tool,
    ToolCall,
    ToolCallDelta,
)

USER = {"role": "user", "content": "hi"}


def _body(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [USER], **extra}


def test_a_minimal_request() -> None:
    model, request, stream, include_usage = parse_request(_body())
    assert (model, stream, include_usage) == ("m", False, False)
    assert request.messages == [Message(role="user", content="hi")]
    assert (request.temperature, request.max_tokens, request.stop, request.tools) == (
        None,
        None,
        None,
        None,
    )


def test_every_option_is_read() -> None:
    body = _body(
        messages=[
            {"role": "developer", "content": "be brief"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
                ],
            },
            {"role": "tool", "content": "42", "tool_call_id": "call_0", "name": "f"},
        ],
        temperature=1,
        max_completion_tokens=5,
        max_tokens=9,
        stop="END",
        tools=[{"type": "function", "function": {"name": "f", "description": "d"}}],
        tool_choice={"type": "function", "function": {"name": "f"}},
        response_format={"type": "json_object"},
        stream=True,
        stream_options={"include_usage": True},
        user="ignored",
    )
    _, request, stream, include_usage = parse_request(body)
    assert (stream, include_usage) == (True, True)
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "tool"]
    assert request.messages[1].content == "ab"
    assert request.messages[2].tool_calls == [ToolCall("call_0", "f", '{"x":1}')]
    assert (request.messages[3].tool_call_id, request.messages[3].name) == ("call_0", "f")
    assert request.temperature == 1.0
    assert request.max_tokens == 5  # max_completion_tokens wins
    assert request.stop == ["END"]
    assert request.tools == [Tool("f", "d", {"type": "object", "properties": {}})]
    assert request.tool_choice == "f"
    assert request.response_format == {"type": "json_object"}


def test_include_usage_needs_a_stream() -> None:
    assert parse_request(_body(stream_options={"include_usage": True}))[3] is False


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"messages": [USER]}, "model"),
        (_body(model="  "), "model"),
        (_body(messages=[]), "messages"),
        (_body(n=2), "n"),
        (_body(messages=[{"role": "system", "content": "x"}]), "messages"),
        (_body(messages=["hi"]), "messages[0]"),
        (_body(messages=[{"role": "robot", "content": "x"}]), "messages[0].role"),
        (_body(messages=[{"role": "user"}]), "messages[0].content"),
        (
            _body(messages=[{"role": "user", "content": [{"type": "image_url"}]}]),
            "messages[0].content",
        ),
        (_body(messages=[{"role": "user", "content": 3}]), "messages[0].content"),
        (
            _body(messages=[{"role": "assistant", "tool_calls": [{"function": {}}]}]),
            "messages[0].tool_calls[0]",
        ),
        (
            _body(
                messages=[
                    {
                        "role": "assistant",
                        "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}],
                    }
                ]
            ),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            _body(messages=[{"role": "tool", "content": "x", "tool_call_id": 1}]),
            "messages[0].tool_call_id",
        ),
        (_body(temperature=3), "temperature"),
        (_body(temperature=True), "temperature"),
        (_body(max_tokens=0), "max_tokens"),
        (_body(max_completion_tokens=1.5), "max_completion_tokens"),
        (_body(stop=[1]), "stop"),
        (_body(tools={"f": 1}), "tools"),
        (_body(tools=[{"function": {"name": ""}}]), "tools[0]"),
        (
            _body(tools=[{"function": {"name": "f", "parameters": []}}]),
            "tools[0].function.parameters",
        ),
        (_body(tool_choice="always"), "tool_choice"),
        (_body(response_format={"type": "xml"}), "response_format"),
        (
            _body(response_format={"type": "json_schema", "json_schema": 1}),
            "response_format.json_schema",
        ),
    ],
)
def test_refusals_name_the_parameter(body: Any, param: str | None) -> None:
    with pytest.raises(WireError) as caught:
        parse_request(body)
    assert caught.value.param == param


def test_half_written_arguments_pass_as_they_are() -> None:
    call = {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": '{"x":'}}]}
    _, request, _, _ = parse_request(_body(messages=[USER, call]))
    assert request.messages[1].tool_calls[0].arguments == '{"x":'


def test_render_an_answer() -> None:
    answer = ChatResponse(
        text="", tool_calls=[ToolCall("c1", "f", "{}")], finish_reason="tool_calls"
    )
    body = orjson.loads(render_response(answer, model="m", response_id="r", created=7))
    assert body["object"] == "chat.completion"
    assert (body["id"], body["model"], body["created"]) == ("r", "m", 7)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    assert "usage" not in body  # none reported: none invented


def test_an_empty_answer_has_empty_content_and_stops() -> None:
    body = orjson.loads(
        render_response(ChatResponse(text=""), model="m", response_id="r", created=1)
    )
    assert body["choices"][0]["message"]["content"] == ""
    assert body["choices"][0]["finish_reason"] == "stop"


def _event(data: bytes) -> dict[str, Any]:
    assert data.startswith(b"data: ") and data.endswith(b"\n\n")
    parsed: dict[str, Any] = orjson.loads(data[6:-2])
    return parsed


def test_chunks_carry_the_role_once_then_deltas() -> None:
    writer = ChunkWriter(model="m", response_id="r", created=3)
    first = _event(writer.chunk(StreamChunk(text="he")))
    second = _event(
        writer.chunk(
            StreamChunk(
                tool_calls=[ToolCallDelta(0, "c1", "f", '{"a"')], finish_reason="tool_calls"
            )
        )
    )
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "he"}
    assert second["choices"][0]["delta"] == {
        "tool_calls": [
            {
                "index": 0,
                "id": "c1",
                "type": "function",
                "function": {"arguments": '{"a"', "name": "f"},
            }
        ]
    }
    assert second["choices"][0]["finish_reason"] == "tool_calls"
    assert writer.done() == b"data: [DONE]\n\n"


def test_an_error_body() -> None:
    assert orjson.loads(error_json("no", "invalid_request_error", "bad", "model")) == {
        "error": {"message": "no", "type": "invalid_request_error", "param": "model", "code": "bad"}
    }
