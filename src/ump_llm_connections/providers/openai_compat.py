"""OpenAI's Chat Completions wire format: OpenAI, Groq, Together, Azure OpenAI, vLLM, TGI, LiteLLM,
llama.cpp's server and Text Generation WebUI. They differ only in data: base URL, auth header,
and Azure's deployment route with its ``api-version``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from ump_llm_connections.domain.secret import SecretText
from ump_llm_connections.providers.base import Adapter
from ump_llm_connections.providers.reading import sse_events
from ump_llm_connections.providers.target import HttpCall
from ump_llm_connections.providers.types import (
    ChatRequest,
    ChatResponse,
    Message,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
    counts,
)


class OpenAICompatAdapter(Adapter):
    api_format = "openai"

    @property
    def _azure(self) -> bool:
        return bool(self.target.deployment and self.target.api_version)

    def _headers(self) -> dict[str, str | SecretText]:
        key = self.target.api_key
        headers: dict[str, str | SecretText] = {}
        if key:
            if self._azure:
                headers["api-key"] = key
            else:
                headers["Authorization"] = SecretText(f"Bearer {key.reveal()}")
        if self.target.organization_id:
            headers["OpenAI-Organization"] = self.target.organization_id
        return headers

    def _url(self, path: str) -> str:
        if self._azure:
            base = self.target.base_url.rstrip("/")
            deployment = quote(self.target.deployment or "", safe="")
            version = quote(self.target.api_version or "", safe="")
            scope = (
                f"/openai/deployments/{deployment}" if path == "/chat/completions" else "/openai"
            )
            return f"{base}{scope}{path}?api-version={version}"
        return self.target.root("/v1") + path

    def chat_call(self, request: ChatRequest, *, stream: bool) -> HttpCall:
        body: dict[str, Any] = {
            "model": self.target.model,
            "messages": _messages(request),
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.stop:
            body["stop"] = request.stop
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        **({"description": t.description} if t.description else {}),
                        "parameters": t.parameters,
                    },
                }
                for t in request.tools
            ]
        if request.tool_choice:
            body["tool_choice"] = (
                request.tool_choice
                if request.tool_choice in ("auto", "none", "required")
                else {"type": "function", "function": {"name": request.tool_choice}}
            )
        if request.response_format:
            body["response_format"] = request.response_format
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return HttpCall("POST", self._url("/chat/completions"), self._headers(), body)

    def parse_response(self, body: Any) -> ChatResponse:
        choice = body["choices"][0]
        message = choice.get("message") or {}
        calls = [
            ToolCall(
                id=c.get("id") or f"call_{i}",
                name=c["function"]["name"],
                arguments=_arguments_text(c["function"].get("arguments")),
            )
            for i, c in enumerate(message.get("tool_calls") or [])
        ]
        return ChatResponse(
            text=message.get("content") or "",
            tool_calls=calls,
            finish_reason=choice.get("finish_reason"),
            usage=_usage(body.get("usage")),
            model=body.get("model"),
        )

    async def parse_stream(self, response: aiohttp.ClientResponse) -> AsyncIterator[StreamChunk]:
        async for _event, data in sse_events(response, self.target.max_response_bytes):
            if data == "[DONE]":
                return
            body = orjson.loads(data)
            if "error" in body:  # some servers report a failure inside the stream
                raise self._http_error(500, data.encode(), {})
            chunk = StreamChunk()
            if body.get("usage"):
                chunk.usage = _usage(body["usage"])
            for choice in body.get("choices") or []:
                delta = choice.get("delta") or {}
                chunk.text += delta.get("content") or ""
                for call in delta.get("tool_calls") or []:
                    function = call.get("function") or {}
                    chunk.tool_calls.append(
                        ToolCallDelta(
                            index=call.get("index", 0),
                            id=call.get("id"),
                            name=function.get("name"),
                            arguments=_arguments_text(function.get("arguments")),
                        )
                    )
                chunk.finish_reason = choice.get("finish_reason") or chunk.finish_reason
            yield chunk
        raise self.incomplete()

    def models_call(self) -> HttpCall:
        return HttpCall("GET", self._url("/models"), self._headers())

    def parse_models(self, body: Any) -> list[str]:
        return [str(m["id"]) for m in body["data"]]


def _messages(request: ChatRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    out.extend(_message(m) for m in request.messages)
    return out


def _message(m: Message) -> dict[str, Any]:
    message: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if m.tool_call_id:
        message["tool_call_id"] = m.tool_call_id
    return message


def _arguments_text(arguments: Any) -> str:
    """Arguments as JSON text; a few servers send an object where OpenAI sends a string."""
    if arguments is None:
        return ""
    return arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()


def _usage(raw: Any) -> Usage:
    """OpenAI's counts: ``prompt_tokens`` includes the cached ones, ``completion_tokens`` the
    reasoning ones."""
    found = counts(raw)
    found.pop("total_tokens", None)
    return Usage(
        input_tokens=found.pop("prompt_tokens", None),
        output_tokens=found.pop("completion_tokens", None),
        cache_read_tokens=found.pop("prompt_tokens_details.cached_tokens", 0),
        reasoning_tokens=found.pop("completion_tokens_details.reasoning_tokens", 0),
        details=found,
    )
