"""Google's Gemini API: ``models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``,
``x-goog-api-key`` (never ``?key=``: URLs end up in access logs and stack traces), contents made
of parts, ``systemInstruction``, ``functionCall``/``functionResponse`` and ``usageMetadata``."""

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

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
}
PART_MARKS = frozenset({"thought", "thoughtSignature"})  # on a part, not a part's content
CALLING_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


class GoogleAdapter(Adapter):
    api_format = "google"

    def _headers(self) -> dict[str, str | SecretText]:
        key = self.target.api_key
        return {"x-goog-api-key": key} if key else {}

    def _model_url(self, action: str) -> str:
        model = quote(self.target.model.removeprefix("models/"), safe="")
        return f"{self.target.root('/v1beta')}/models/{model}:{action}"

    def chat_call(self, request: ChatRequest, *, stream: bool) -> HttpCall:
        body: dict[str, Any] = {"contents": _contents(request)}
        system = request.system_prompt()
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        config: dict[str, Any] = {}
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.max_tokens is not None:
            config["maxOutputTokens"] = request.max_tokens
        if request.stop:
            config["stopSequences"] = request.stop
        if request.wants_json():
            config["responseMimeType"] = "application/json"
        if config:
            body["generationConfig"] = config
        if request.tools:
            body["tools"] = [
                {
                    "functionDeclarations": [
                        {
                            "name": t.name,
                            **({"description": t.description} if t.description else {}),
                            "parameters": t.parameters,
                        }
                        for t in request.tools
                    ]
                }
            ]
            if request.tool_choice:
                mode = CALLING_MODES.get(request.tool_choice)
                calling: dict[str, Any] = {"mode": mode or "ANY"}
                if mode is None:
                    calling["allowedFunctionNames"] = [request.tool_choice]
                body["toolConfig"] = {"functionCallingConfig": calling}
        url = (
            self._model_url("streamGenerateContent") + "?alt=sse"
            if stream
            else (self._model_url("generateContent"))
        )
        return HttpCall("POST", url, self._headers(), body)

    def parse_response(self, body: Any) -> ChatResponse:
        text, calls, finish = self._candidate(body, first_index=0)
        return ChatResponse(
            text=text,
            tool_calls=calls,
            finish_reason=finish,
            usage=_usage(body),
            model=body.get("modelVersion"),
        )

    async def parse_stream(self, response: aiohttp.ClientResponse) -> AsyncIterator[StreamChunk]:
        calls = 0
        finished = False
        async for _event, data in sse_events(response, self.target.max_response_bytes):
            body = orjson.loads(data)
            if "error" in body:
                raise self._http_error(int(body["error"].get("code") or 500), data.encode(), {})
            text, found, finish = self._candidate(body, first_index=calls)
            chunk = StreamChunk(text=text, finish_reason=finish)
            for call in found:
                chunk.tool_calls.append(
                    ToolCallDelta(index=calls, id=call.id, name=call.name, arguments=call.arguments)
                )
                calls += 1
            if calls and chunk.finish_reason == "stop":
                chunk.finish_reason = "tool_calls"
            if "usageMetadata" in body:
                chunk.usage = _usage(body)
            finished = finished or finish is not None
            yield chunk
        if not finished:  # Gemini has no end marker: a finishReason is how a stream ends
            raise self.incomplete()

    def _candidate(
        self, body: dict[str, Any], *, first_index: int
    ) -> tuple[str, list[ToolCall], str | None]:
        """Text, function calls and finish reason of the first candidate."""
        candidates = body.get("candidates") or []
        if not candidates:
            blocked = (body.get("promptFeedback") or {}).get("blockReason")
            return "", [], "content_filter" if blocked else None
        candidate = candidates[0]
        text: list[str] = []
        calls: list[ToolCall] = []
        for part in (candidate.get("content") or {}).get("parts") or []:
            if "text" in part and not part.get("thought"):
                text.append(part["text"])
            elif "functionCall" in part:
                call = part["functionCall"]
                calls.append(
                    ToolCall(
                        id=call.get("id") or f"call_{first_index + len(calls)}",
                        name=call["name"],
                        arguments=orjson.dumps(call.get("args") or {}).decode(),
                    )
                )
            elif "text" not in part and set(part) - PART_MARKS:  # code execution, inline data …
                raise self.untranslatable("part", min(set(part) - PART_MARKS))
        reason = candidate.get("finishReason")
        finish = FINISH_REASONS.get(reason, "stop") if reason else None
        if calls and finish == "stop":
            finish = "tool_calls"
        return "".join(text), calls, finish

    def is_auth_error(self, status: int, body: Any) -> bool:
        """Gemini answers a wrong key with 400 and the reason API_KEY_INVALID."""
        if status != 400 or not isinstance(body, dict):
            return False
        error = body.get("error")
        details = error.get("details") if isinstance(error, dict) else None
        return any(
            isinstance(d, dict) and d.get("reason") == "API_KEY_INVALID" for d in details or []
        )

    def models_call(self) -> HttpCall:
        return HttpCall(
            "GET", f"{self.target.root('/v1beta')}/models?pageSize=1000", self._headers()
        )

    def parse_models(self, body: Any) -> list[str]:
        return [str(m["name"]).removeprefix("models/") for m in body.get("models") or []]


def _usage(body: dict[str, Any]) -> Usage:
    """Gemini's counts: ``promptTokenCount`` includes the cached ones; the thoughts are counted
    apart from ``candidatesTokenCount``, and added to the answer here (as OpenAI counts)."""
    found = counts(body.get("usageMetadata"))
    found.pop("totalTokenCount", None)
    answer = found.pop("candidatesTokenCount", None)
    thoughts = found.pop("thoughtsTokenCount", None)
    return Usage(
        input_tokens=found.pop("promptTokenCount", None),
        output_tokens=None
        if answer is None and thoughts is None
        else (answer or 0) + (thoughts or 0),
        cache_read_tokens=found.pop("cachedContentTokenCount", 0),
        reasoning_tokens=thoughts or 0,
        details=found,
    )


def _contents(request: ChatRequest) -> list[dict[str, Any]]:
    names = {c.id: c.name for m in request.messages for c in m.tool_calls}
    out: list[dict[str, Any]] = []
    for m in request.conversation():
        content = _content(m, names)
        if out and out[-1]["role"] == content["role"]:
            out[-1]["parts"].extend(content["parts"])  # Gemini wants turns to alternate
        else:
            out.append(content)
    return out


def _content(m: Message, names: dict[str, str]) -> dict[str, Any]:
    if m.role == "tool":
        name = m.name or names.get(m.tool_call_id or "") or "tool"
        try:
            result = orjson.loads(m.content or "null")
        except orjson.JSONDecodeError:
            result = m.content
        response = result if isinstance(result, dict) else {"content": result}
        return {
            "role": "user",
            "parts": [{"functionResponse": {"name": name, "response": response}}],
        }
    parts: list[dict[str, Any]] = [{"text": m.content}] if m.content else []
    parts += [
        {"functionCall": {"name": c.name, "args": c.arguments_object()}} for c in m.tool_calls
    ]
    return {"role": "model" if m.role == "assistant" else "user", "parts": parts or [{"text": ""}]}
