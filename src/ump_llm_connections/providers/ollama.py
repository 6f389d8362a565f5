"""Ollama's native API: ``/api/chat`` with NDJSON streaming, ``/api/tags`` for the models.
Tool-call arguments are objects here, not JSON text; token counts are ``prompt_eval_count`` and
``eval_count``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ump_llm_connections.domain.secret import SecretText
from ump_llm_connections.providers.base import Adapter
from ump_llm_connections.providers.reading import ndjson_lines
from ump_llm_connections.providers.target import HttpCall
from ump_llm_connections.providers.types import (
    ChatRequest,
    ChatResponse,
    Message,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)


class OllamaAdapter(Adapter):
    api_format = "ollama"

    def _headers(self) -> dict[str, str | SecretText]:
        key = self.target.api_key
        return {"Authorization": SecretText(f"Bearer {key.reveal()}")} if key else {}

    def _url(self, path: str) -> str:
        return self.target.base_url.rstrip("/") + path

    def chat_call(self, request: ChatRequest, *, stream: bool) -> HttpCall:
        body: dict[str, Any] = {
            "model": self.target.model,
            "messages": _messages(request),
            "stream": stream,  # Ollama streams unless told not to
        }
        options: dict[str, Any] = {}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.max_tokens is not None:
            options["num_predict"] = request.max_tokens
        if request.stop:
            options["stop"] = request.stop
        if options:
            body["options"] = options
        if request.tools and request.tool_choice != "none":
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description or "",
                        "parameters": t.parameters,
                    },
                }
                for t in request.tools
            ]
        if request.wants_json():
            body["format"] = request.json_schema() or "json"
        return HttpCall("POST", self._url("/api/chat"), self._headers(), body)

    def parse_response(self, body: Any) -> ChatResponse:
        message = body.get("message") or {}
        calls = _tool_calls(message)
        return ChatResponse(
            text=message.get("content") or "",
            tool_calls=calls,
            finish_reason="tool_calls" if calls else body.get("done_reason", "stop"),
            usage=_usage(body),
            model=body.get("model"),
        )

    async def parse_stream(self, response: aiohttp.ClientResponse) -> AsyncIterator[StreamChunk]:
        calls = 0
        async for line in ndjson_lines(response, self.target.max_response_bytes):
            if "error" in line:
                raise self._http_error(500, orjson.dumps(line), {})
            message = line.get("message") or {}
            chunk = StreamChunk(text=message.get("content") or "")
            for call in _tool_calls(message, first_index=calls):
                chunk.tool_calls.append(
                    ToolCallDelta(index=calls, id=call.id, name=call.name, arguments=call.arguments)
                )
                calls += 1
            if line.get("done"):
                chunk.finish_reason = "tool_calls" if calls else line.get("done_reason", "stop")
                chunk.usage = _usage(line)
                yield chunk
                return
            yield chunk
        raise self.incomplete()

    def models_call(self) -> HttpCall:
        return HttpCall("GET", self._url("/api/tags"), self._headers())

    def parse_models(self, body: Any) -> list[str]:
        return [str(m["name"]) for m in body["models"]]


def _tool_calls(message: dict[str, Any], first_index: int = 0) -> list[ToolCall]:
    return [
        ToolCall(
            id=c.get("id") or f"call_{first_index + i}",
            name=c["function"]["name"],
            arguments=orjson.dumps(c["function"].get("arguments") or {}).decode(),
        )
        for i, c in enumerate(message.get("tool_calls") or [])
    ]


def _usage(body: dict[str, Any]) -> Usage:
    """Ollama counts the prompt and the answer only (the rest of its final line is timings)."""
    return Usage(input_tokens=body.get("prompt_eval_count"), output_tokens=body.get("eval_count"))


def _messages(request: ChatRequest) -> list[dict[str, Any]]:
    names = {c.id: c.name for m in request.messages for c in m.tool_calls}
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    for m in request.messages:
        out.append(_message(m, names))
    return out


def _message(m: Message, names: dict[str, str]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": m.role, "content": m.content or ""}
    if m.tool_calls:
        message["tool_calls"] = [
            {"function": {"name": c.name, "arguments": c.arguments_object()}} for c in m.tool_calls
        ]
    if m.role == "tool":
        name = m.name or names.get(m.tool_call_id or "")
        if name:
            message["tool_name"] = name
    return message
