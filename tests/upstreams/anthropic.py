"""A fake Anthropic Messages API server.

Routes: ``POST /v1/messages`` (JSON, or SSE with ``event:`` lines: ``message_start``,
``content_block_start``, ``ping``, ``content_block_delta``…, ``content_block_stop``,
``message_delta``, ``message_stop``), ``GET /v1/models`` and ``GET /v1/models/{model_id}``.
Every request needs an ``anthropic-version`` header and the key: ``x-api-key`` as documented, or
``Authorization: Bearer`` as the official SDK (2.x) sends ``api_key``; an ``x-api-key`` that is
present decides alone. The version's value is not checked. Messages may carry roles user,
assistant, and system (text only, as the SDK's ``SystemMessageParam``) besides the top-level
``system``. Errors: ``{"type": "error", "error": {"type", "message"}}``.

Anthropic always reports token usage, so ``Reply.report_usage`` is ignored here.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.upstreams.base import SSE, Behaviour, FakeUpstream

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# Reply.finish_reason is written in OpenAI's words by most tests; Anthropic's own pass through.
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}

BLOCK_TYPES = {"text", "image", "tool_use", "tool_result"}


def problem(body: Any) -> str | None:
    """What makes ``body`` an invalid Messages request, or None."""
    if not isinstance(body, dict):
        return "The request body is not valid JSON."
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        return "max_tokens: Field required"
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: Input should be a positive integer"
    messages = body.get("messages")
    if not isinstance(messages, list):
        return "messages: Field required"
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant", "system"):
            return f"messages.{i}.role: Input should be 'user', 'assistant' or 'system'"
        content = message.get("content")
        if role == "system":
            if not text_only(content):
                return f"messages.{i}.content: Input should be a string or a list of text blocks"
            continue
        error = content_problem(content, f"messages.{i}.content")
        if error:
            return error
    system = body.get("system")
    if system is not None and not text_only(system):
        return "system: Input should be a string or a list of text blocks"
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, (int, float)) or not 0 <= temperature <= 1
    ):
        return "temperature: Input should be between 0 and 1"
    stops = body.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or any(not isinstance(s, str) for s in stops)
    ):
        return "stop_sequences: Input should be a list of strings"
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return "tools: Input should be a valid list"
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                return f"tools.{i}.name: Field required"
            if not isinstance(tool.get("input_schema"), dict):
                return f"tools.{i}.input_schema: Field required"
    choice = body.get("tool_choice")
    if choice is not None and (
        not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none")
    ):
        return "tool_choice: Input should be an object with type auto, any, tool or none"
    return None


def text_only(content: Any) -> bool:
    """Whether ``content`` is a string or a list of text blocks."""
    return isinstance(content, str) or (
        isinstance(content, list)
        and all(
            isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
            for b in content
        )
    )


def content_problem(content: Any, where: str) -> str | None:
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return f"{where}: Input should be a string or a list of content blocks"
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in BLOCK_TYPES:
            return f"{where}.{j}.type: Input tag {kind!r} does not match any expected tag"
        assert isinstance(block, dict)
        if kind == "text" and not isinstance(block.get("text"), str):
            return f"{where}.{j}.text: Field required"
        if kind == "tool_use" and not (
            isinstance(block.get("id"), str)
            and isinstance(block.get("name"), str)
            and isinstance(block.get("input"), dict)
        ):
            return f"{where}.{j}: tool_use blocks need id, name and input"
        if kind == "tool_result" and not isinstance(block.get("tool_use_id"), str):
            return f"{where}.{j}.tool_use_id: Field required"
    return None


class FakeAnthropic(FakeUpstream):
    # A content block sent before the answer's (a thinking block, or one of a type the gateway
    # does not know), in the answer's content or as a block of the stream, with its delta.
    first_block: tuple[dict[str, Any], dict[str, Any]] | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_get("/v1/models/{model_id}", self.get_model)

    def authorized(self, request: web.Request) -> bool:
        if "x-api-key" in request.headers:
            return request.headers["x-api-key"] == self.api_key
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    def error_response(self, status: int, message: str) -> web.Response:
        kind = ERROR_TYPES.get(status, "api_error")
        return self.json({"type": "error", "error": {"type": kind, "message": message}}, status)

    def _unversioned(self, request: web.Request) -> web.Response | None:
        if "anthropic-version" not in request.headers:
            return self.error_response(400, "anthropic-version: header is required")
        return None

    @staticmethod
    def _model(model: str) -> dict[str, Any]:
        return {
            "type": "model",
            "id": model,
            "display_name": model,
            "created_at": "2025-01-01T00:00:00Z",
        }

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        refused = self._unversioned(request) or await self.refuse(
            request, self.next_behaviour(), None
        )
        if refused is not None:
            return refused
        data = [self._model(m) for m in self.models]
        return self.json(
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    async def get_model(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        model = request.match_info["model_id"]
        refused = self._unversioned(request) or await self.refuse(
            request, self.next_behaviour(), model
        )
        if refused is not None:
            return refused
        return self.json(self._model(model))

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        unversioned = self._unversioned(request)
        if unversioned is not None:
            return unversioned
        error = problem(body)
        if error is not None:
            return self.error_response(400, error)
        model = str(body["model"])
        behaviour = self.next_behaviour()
        refused = await self.refuse(request, behaviour, model)
        if refused is not None:
            return refused
        if behaviour is Behaviour.malformed and not body.get("stream"):
            return self.malformed()
        choice = body.get("tool_choice") or {}
        tool = bool(body.get("tools")) and self.reply.tool_call is not None
        tool = tool and choice.get("type") != "none"
        if tool:
            stop_reason = "tool_use"
        else:
            finish = self.reply.finish_reason
            stop_reason = STOP_REASONS.get(finish, finish)
        stops = body.get("stop_sequences") or []
        stop_sequence = stops[0] if stop_reason == "stop_sequence" and stops else None
        if body.get("stream"):
            return await self._stream(request, model, behaviour, tool, stop_reason, stop_sequence)
        return self.json(
            {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": ([self.first_block[0]] if self.first_block else [])
                + [self._tool_use(with_input=True) if tool else self._text()],
                "stop_reason": stop_reason,
                "stop_sequence": stop_sequence,
                "usage": self._usage(self.reply.completion_tokens),
            }
        )

    def _usage(self, output_tokens: int) -> dict[str, int]:
        r = self.reply
        return {
            # Anthropic's input_tokens leaves out what was read from or written to the cache
            "input_tokens": r.prompt_tokens - r.cached_tokens - r.cache_write_tokens,
            "cache_creation_input_tokens": r.cache_write_tokens,
            "cache_read_input_tokens": r.cached_tokens,
            "output_tokens": output_tokens,
        }

    def _text(self, text: str | None = None) -> dict[str, Any]:
        return {"type": "text", "text": self.reply.text if text is None else text}

    def _tool_use(self, *, with_input: bool) -> dict[str, Any]:
        call = self.reply.tool_call
        assert call is not None
        return {
            "type": "tool_use",
            "id": call.id,
            "name": call.name,
            "input": call.arguments if with_input else {},
        }

    async def _stream(
        self,
        request: web.Request,
        model: str,
        behaviour: Behaviour,
        tool: bool,
        stop_reason: str,
        stop_sequence: str | None,
    ) -> web.StreamResponse:
        sse = await SSE.open(request)
        if behaviour is Behaviour.malformed:
            await sse.send(b'{"type": "message_start", "message": {"id": ', event="message_start")
            return sse.response

        async def send(event: str, **fields: Any) -> None:
            await sse.send({"type": event, **fields}, event=event)

        message: dict[str, Any] = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self._usage(1),
        }
        await send("message_start", message=message)
        at = 0  # the answer's block index
        if self.first_block:
            start, delta = self.first_block
            await send("content_block_start", index=at, content_block=start)
            await send("content_block_delta", index=at, delta=delta)
            await send("content_block_stop", index=at)
            at += 1
        block = self._tool_use(with_input=False) if tool else self._text("")
        await send("content_block_start", index=at, content_block=block)
        await send("ping")
        if tool:
            call = self.reply.tool_call
            assert call is not None
            arguments = orjson.dumps(call.arguments).decode()
            half = len(arguments) // 2
            for i, piece in enumerate(("", arguments[:half], arguments[half:])):
                if behaviour is Behaviour.cut_stream and i == 2:
                    return await self.cut(request, sse.response)
                delta = {"type": "input_json_delta", "partial_json": piece}
                await send("content_block_delta", index=at, delta=delta)
        else:
            words = self.reply.words()
            for i, word in enumerate(words):
                if behaviour is Behaviour.cut_stream and i == len(words) // 2:
                    return await self.cut(request, sse.response)
                await send(
                    "content_block_delta", index=at, delta={"type": "text_delta", "text": word}
                )
        await send("content_block_stop", index=at)
        await send(
            "message_delta",
            delta={"stop_reason": stop_reason, "stop_sequence": stop_sequence},
            usage={"output_tokens": self.reply.completion_tokens},
        )
        await send("message_stop")
        return sse.response
