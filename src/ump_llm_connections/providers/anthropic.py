"""Anthropic's Messages API: ``x-api-key`` and ``anthropic-version`` headers, the system prompt
as a top-level field, content blocks (text, tool_use, tool_result) and typed SSE events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ump_llm_connections.domain.secret import SecretText
from ump_llm_connections.providers.base import Adapter
from ump_llm_connections.providers.errors import ErrorKind
from ump_llm_connections.providers.reading import sse_events
from ump_llm_connections.providers.target import HttpCall
from ump_llm_connections.providers.types import (
    ChatRequest,
    ChatResponse,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
    counts,
    uncached_prompt_usage,
)

DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; this is what we send when none is set
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
SKIPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})  # counted in the usage, not passed on
SKIPPED_DELTAS = frozenset({"thinking_delta", "signature_delta"})
TOOL_CHOICES = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}


class AnthropicAdapter(Adapter):
    api_format = "anthropic"

    def _headers(self) -> dict[str, str | SecretText]:
        headers: dict[str, str | SecretText] = {
            "anthropic-version": self.target.api_version or DEFAULT_VERSION
        }
        if self.target.api_key:
            headers["x-api-key"] = self.target.api_key
        return headers

    def chat_call(self, request: ChatRequest, *, stream: bool) -> HttpCall:
        body: dict[str, Any] = {
            "model": self.target.model,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": _messages(request),
        }
        system = request.system_prompt()
        if system:
            body["system"] = system
        if request.temperature is not None:
            body["temperature"] = min(request.temperature, 1.0)  # Anthropic's range is 0..1
        if request.stop:
            body["stop_sequences"] = request.stop
        if request.tools:
            body["tools"] = [
                {
                    "name": t.name,
                    **({"description": t.description} if t.description else {}),
                    "input_schema": t.parameters,
                }
                for t in request.tools
            ]
            if request.tool_choice:
                body["tool_choice"] = TOOL_CHOICES.get(
                    request.tool_choice, {"type": "tool", "name": request.tool_choice}
                )
        if stream:
            body["stream"] = True
        return HttpCall("POST", self.target.root("/v1") + "/messages", self._headers(), body)

    def parse_response(self, body: Any) -> ChatResponse:
        text: list[str] = []
        calls: list[ToolCall] = []
        for block in body["content"]:
            if block["type"] == "text":
                text.append(block["text"])
            elif block["type"] == "tool_use":
                calls.append(
                    self.object_tool_call(
                        block["id"], block["name"], block.get("input"), "tool_use"
                    )
                )
            elif block["type"] not in SKIPPED_BLOCKS:
                raise self.untranslatable("content block", block["type"])
        return ChatResponse(
            text="".join(text),
            tool_calls=calls,
            finish_reason=STOP_REASONS.get(body.get("stop_reason") or "", body.get("stop_reason")),
            usage=_usage(counts(body.get("usage"))),
            model=body.get("model"),
        )

    async def parse_stream(self, response: aiohttp.ClientResponse) -> AsyncIterator[StreamChunk]:
        started: dict[str, int] = {}  # message_start's counts: the prompt's
        tool_index: dict[int, int] = {}  # content block index → tool call index
        async for event, data in sse_events(response, self.target.max_response_bytes):
            body = orjson.loads(data)
            kind = body.get("type", event)
            if kind == "message_start":
                started = counts((body.get("message") or {}).get("usage"))
            elif kind == "content_block_start":
                block = body["content_block"]
                if block["type"] == "tool_use":
                    tool_index[body["index"]] = index = len(tool_index)
                    yield StreamChunk(
                        tool_calls=[ToolCallDelta(index=index, id=block["id"], name=block["name"])]
                    )
                elif block["type"] == "text":
                    if block.get("text"):
                        yield StreamChunk(text=block["text"])
                elif block["type"] not in SKIPPED_BLOCKS:
                    raise self.untranslatable("content block", block["type"])
            elif kind == "content_block_delta":
                delta = body["delta"]
                if delta["type"] == "text_delta":
                    yield StreamChunk(text=delta["text"])
                elif delta["type"] == "input_json_delta":
                    index = tool_index[body["index"]]
                    yield StreamChunk(
                        tool_calls=[ToolCallDelta(index=index, arguments=delta["partial_json"])]
                    )
                elif delta["type"] not in SKIPPED_DELTAS:
                    raise self.untranslatable("content delta", delta["type"])
            elif kind == "message_delta":
                reason = (body.get("delta") or {}).get("stop_reason")
                yield StreamChunk(
                    finish_reason=STOP_REASONS.get(reason or "", reason),
                    usage=_usage({**started, **counts(body.get("usage"))}),
                )
            elif kind == "message_stop":
                return
            elif kind == "error":
                error = body.get("error") or {}
                overloaded = error.get("type") in ("overloaded_error", "api_error")
                raise self._error(
                    ErrorKind.server_error if overloaded else ErrorKind.bad_response,
                    f"{self.target.host} failed mid-stream "
                    f"({self.detail(str(error.get('message', 'error')))})",
                )
            # other events (ping, content_block_stop, any added later) carry nothing to pass on
        raise self.incomplete()

    def models_call(self) -> HttpCall:
        return HttpCall("GET", self.target.root("/v1") + "/models?limit=1000", self._headers())

    def parse_models(self, body: Any) -> list[str]:
        return [str(m["id"]) for m in body["data"]]


def _usage(found: dict[str, int]) -> Usage:
    """Anthropic's ``input_tokens`` leaves the cache out: the prompt is all three counts."""
    return uncached_prompt_usage(
        found,
        fresh="input_tokens",
        read="cache_read_input_tokens",
        write="cache_creation_input_tokens",
        output="output_tokens",
    )


def _messages(request: ChatRequest) -> list[dict[str, Any]]:
    """The conversation as content blocks; tool results ride in user turns, merged as needed."""
    out: list[dict[str, Any]] = []
    for m in request.conversation():
        if m.role == "tool":
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id or "",
                "content": m.content or "",
            }
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif m.role == "assistant" and m.tool_calls:
            blocks: list[dict[str, Any]] = (
                [{"type": "text", "text": m.content}] if m.content else []
            )
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments_object()}
                for c in m.tool_calls
            ]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": m.role, "content": m.content or ""})
    return out
