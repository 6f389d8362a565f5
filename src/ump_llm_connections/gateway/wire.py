"""The OpenAI Chat Completions wire format on the gateway's side: requests in, answers out.

Callers speak OpenAI to the gateway whatever the connection speaks upstream; the adapters do the
rest. Fields the gateway does not use (``user``, ``seed``, ``top_p``, …) are accepted and ignored,
as OpenAI-compatible servers do; fields it cannot honour (``n`` > 1, images) are refused.
"""

from __future__ import annotations

from typing import Any

import orjson

from ump_llm_connections.providers.types import (
    ChatRequest,
    ChatResponse,
    Message,
    StreamChunk,
    Tool,
    ToolCall,
    Usage,
)

ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}


class WireError(Exception):
    """A request the gateway refuses, naming the parameter (OpenAI's ``param``)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def parse_request(body: Any) -> tuple[str, ChatRequest, bool, bool]:
    """(model, request, stream, include_usage) from a Chat Completions body."""
    if not isinstance(body, dict):
        raise WireError("the body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise WireError("model is required: the name or id of a connection", "model")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise WireError("messages must be a non-empty list", "messages")
    if body.get("n") not in (None, 1):
        raise WireError("n must be 1", "n")
    messages = [_message(m, i) for i, m in enumerate(raw_messages)]
    if all(m.role == "system" for m in messages):
        raise WireError("messages must hold more than system messages", "messages")
    request = ChatRequest(
        messages=messages,
        temperature=_number(body, "temperature", 0, 2),
        max_tokens=_max_tokens(body),
        stop=_stop(body.get("stop")),
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice")),
        response_format=_response_format(body.get("response_format")),
    )
    stream = body.get("stream") is True
    options = body.get("stream_options") or {}
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    return model, request, stream, include_usage


def _message(raw: Any, index: int) -> Message:
    where = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise WireError(f"{where} must be an object", where)
    role = raw.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise WireError(f"{where}.role must be one of {', '.join(ROLES)}", f"{where}.role")
    raw_calls = raw.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise WireError(f"{where}.tool_calls must be a list", f"{where}.tool_calls")
    content = _content(raw.get("content"), f"{where}.content")
    calls = [_tool_call(c, f"{where}.tool_calls[{j}]", j) for j, c in enumerate(raw_calls)]
    if content is None and not (calls and role == "assistant"):
        wanted = "content or tool_calls" if role == "assistant" else "content"
        raise WireError(f"{where} needs {wanted}", f"{where}.content")
    return Message(
        role=ROLES[role],  # type: ignore[arg-type]
        content=content,
        tool_calls=calls,
        tool_call_id=_optional_text(raw, "tool_call_id", where),
        name=_optional_text(raw, "name", where),
    )


def _tool_call(raw: Any, where: str, index: int) -> ToolCall:
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(function, dict) or not _is_name(function.get("name")):
        raise WireError(f"{where} must be a function call with a name", where)
    call_id = raw.get("id")
    if call_id is not None and not isinstance(call_id, str):
        raise WireError(f"{where}.id must be a string", f"{where}.id")
    return ToolCall(
        id=call_id or f"call_{index}",
        name=function["name"],
        arguments=_text_arguments(function.get("arguments"), f"{where}.function.arguments"),
    )


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _optional_text(raw: dict[str, Any], field: str, where: str) -> str | None:
    value = raw.get(field)
    if value is not None and not isinstance(value, str):
        raise WireError(f"{where}.{field} must be a string", f"{where}.{field}")
    return value


def _content(content: Any, where: str) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in ("text", "input_text"):
                raise WireError(f"{where}: only text content is supported", where)
            text = part.get("text", "")
            if not isinstance(text, str):
                raise WireError(f"{where}: a text part's text must be a string", where)
            texts.append(text)
        return "".join(texts)
    raise WireError(f"{where} must be a string or a list of text parts", where)


def _text_arguments(arguments: Any, where: str) -> str:
    """A call's arguments as JSON text of an object (the formats that carry an object need one)."""
    if arguments is None or arguments == "":
        return ""
    if isinstance(arguments, dict):
        return orjson.dumps(arguments).decode()
    if isinstance(arguments, str):
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            parsed = {}  # half-written arguments: passed on as they are
        if isinstance(parsed, dict):
            return arguments
    raise WireError(f"{where} must be a JSON object, or its JSON text", where)


def _number(body: dict[str, Any], field: str, low: float, high: float) -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise WireError(f"{field} must be a number from {low:g} to {high:g}", field)
    return float(value)


def _max_tokens(body: dict[str, Any]) -> int | None:
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise WireError(f"{field} must be a positive integer", field)
            return value
    return None


def _stop(stop: Any) -> list[str] | None:
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return stop or None
    raise WireError("stop must be a string or a list of strings", "stop")


def _tools(tools: Any) -> list[Tool] | None:
    if not tools:
        return None
    if not isinstance(tools, list):
        raise WireError("tools must be a list", "tools")
    out = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not _is_name(function.get("name")):
            raise WireError(f"tools[{i}] must be a function with a name", f"tools[{i}]")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            where = f"tools[{i}].function.parameters"
            raise WireError(f"{where} must be a JSON schema object", where)
        out.append(
            Tool(
                name=function["name"],
                description=_optional_text(function, "description", f"tools[{i}].function"),
                parameters=parameters or {"type": "object", "properties": {}},
            )
        )
    return out


def _tool_choice(choice: Any) -> str | None:
    if choice is None or choice in ("auto", "none", "required"):
        return choice  # type: ignore[no-any-return]
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        if isinstance(name, str):
            return name
    raise WireError("tool_choice must be auto, none, required or a function", "tool_choice")


def _response_format(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, dict) and value.get("type") in ("text", "json_object"):
        return None if value["type"] == "text" else value
    if isinstance(value, dict) and value.get("type") == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise WireError(
                "response_format.json_schema must be an object with a schema object",
                "response_format.json_schema",
            )
        return value
    raise WireError(
        "response_format.type must be text, json_object or json_schema", "response_format"
    )


def render_response(answer: ChatResponse, *, model: str, response_id: str, created: int) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": answer.text or None}
    if answer.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in answer.tool_calls
        ]
    elif message["content"] is None:
        message["content"] = ""
    body: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": answer.finish_reason or "stop",
            }
        ],
    }
    usage = usage_json(answer.usage)
    if usage is not None:
        body["usage"] = usage
    return orjson.dumps(body)


def usage_json(usage: Usage | None) -> dict[str, Any] | None:
    """OpenAI's usage object, or None when the upstream reported no counts (never invented).
    Cached prompt tokens and reasoning tokens are parts of the two counts, as OpenAI has them."""
    if usage is None or not usage.reported:
        return None
    prompt, completion = usage.input_tokens or 0, usage.output_tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


class ChunkWriter:
    """Renders stream chunks as OpenAI ``chat.completion.chunk`` SSE events."""

    def __init__(self, *, model: str, response_id: str, created: int) -> None:
        self._head = (
            b'{"id":'
            + orjson.dumps(response_id)
            + b',"object":"chat.completion.chunk","created":'
            + str(created).encode()
            + b',"model":'
            + orjson.dumps(model)
        )
        self._first = True

    def chunk(self, chunk: StreamChunk) -> bytes:
        delta: dict[str, Any] = {}
        if self._first:
            delta["role"] = "assistant"
            self._first = False
        if chunk.text:
            delta["content"] = chunk.text
        if chunk.tool_calls:
            delta["tool_calls"] = [
                _tool_delta(d.index, d.id, d.name, d.arguments) for d in chunk.tool_calls
            ]
        choice = {
            "index": 0,
            "delta": delta,
            "logprobs": None,
            "finish_reason": chunk.finish_reason,
        }
        return self._event(b',"choices":[' + orjson.dumps(choice) + b"]}")

    def usage(self, usage: Usage | None) -> bytes:
        counts = usage_json(usage)
        return self._event(b',"choices":[],"usage":' + orjson.dumps(counts) + b"}")

    @staticmethod
    def done() -> bytes:
        return b"data: [DONE]\n\n"

    def _event(self, tail: bytes) -> bytes:
        return b"data: " + self._head + tail + b"\n\n"


def _tool_delta(
    index: int, call_id: str | None, name: str | None, arguments: str
) -> dict[str, Any]:
    delta: dict[str, Any] = {"index": index}
    if call_id:
        delta["id"] = call_id
        delta["type"] = "function"
    function: dict[str, Any] = {"arguments": arguments}
    if name:
        function["name"] = name
    delta["function"] = function
    return delta


def error_json(message: str, kind: str, code: str | None, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})
