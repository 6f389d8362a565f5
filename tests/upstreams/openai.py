"""A fake OpenAI Chat Completions server (also Azure OpenAI's deployment routes).

Routes: ``POST /v1/chat/completions`` (JSON, or SSE ``data:`` chunks ending in ``data: [DONE]``;
a usage chunk with ``stream_options.include_usage``), ``GET /v1/models``, and Azure's
``POST /openai/deployments/{deployment}/chat/completions?api-version=…`` with an ``api-key``
header. Errors: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from tests.upstreams.base import PIECE, SSE, Behaviour, FakeUpstream, stream_bytes

ERROR_CODES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
}


class FakeOpenAI(FakeUpstream):
    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self.azure_chat)

    def authorized(self, request: web.Request) -> bool:
        if request.path.startswith("/openai/deployments/"):
            return request.headers.get("api-key") == self.api_key
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    def error_response(self, status: int, message: str) -> web.Response:
        kind, code = ERROR_CODES.get(status, ("api_error", None))
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        return self.json(body, status)

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        refused = await self.refuse(request, self.next_behaviour(), None)
        if refused is not None:
            return refused
        data = [
            {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "fake"}
            for m in self.models
        ]
        return self.json({"object": "list", "data": data})

    async def azure_chat(self, request: web.Request) -> web.StreamResponse:
        if "api-version" not in request.query:
            await self.record(request)
            return self.error_response(400, "api-version query parameter is required")
        return await self._chat(request, model=request.match_info["deployment"])

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request, model=None)

    async def _chat(self, request: web.Request, model: str | None) -> web.StreamResponse:
        body = await self.record(request)
        if not isinstance(body, dict) or "messages" not in body:
            return self.error_response(400, "'messages' is a required property")
        model = model or body.get("model")
        behaviour = self.next_behaviour()
        refused = await self.refuse(request, behaviour, model)
        if refused is not None:
            return refused
        if behaviour is Behaviour.malformed and not body.get("stream"):
            return self.malformed()
        if behaviour is Behaviour.long_answer and not body.get("stream"):
            return await self._long_answer(request, str(model))
        tool = self.reply.tool_call if body.get("tools") else None
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self._stream(
                request, str(model), behaviour, tool is not None, include_usage
            )
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if tool else self.reply.text,
            "refusal": None,
        }
        if tool:
            message["tool_calls"] = [self._tool_call(with_arguments=True)]
        answer: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if tool else self.reply.finish_reason,
                }
            ],
        }
        if self.reply.report_usage:
            answer["usage"] = self._usage()
        return self.json(answer)

    async def _long_answer(self, request: web.Request, model: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        head = {"id": "chatcmpl-fake", "object": "chat.completion", "model": model}
        start = orjson.dumps(head)[:-1] + b', "choices": [{"index": 0, "message": {"role": '
        start += b'"assistant", "content": "'
        end = b'"}, "finish_reason": "stop"}]}'
        await stream_bytes(response, start, b"x", self.body_bytes, end)
        return response

    def _usage(self) -> dict[str, Any]:
        r = self.reply
        return {
            "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens,
            "total_tokens": r.prompt_tokens + r.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": r.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": r.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _tool_call(self, *, with_arguments: bool) -> dict[str, Any]:
        call = self.reply.tool_call
        assert call is not None
        arguments = orjson.dumps(call.arguments).decode() if with_arguments else ""
        return {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": arguments},
        }

    async def _stream(
        self,
        request: web.Request,
        model: str,
        behaviour: Behaviour,
        tool: bool,
        include_usage: bool,
    ) -> web.StreamResponse:
        sse = await SSE.open(request)
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }

        if behaviour is Behaviour.malformed:
            await sse.send(b'{"id": "chatcmpl-fake", "choices": [')
            return sse.response
        await sse.send(chunk({"role": "assistant", "content": ""}))
        if behaviour is Behaviour.huge_event:
            await stream_bytes(sse.response, b"data: ", b"x", self.body_bytes, b"\n\n")
            return sse.response
        if behaviour is Behaviour.long_answer:
            event = orjson.dumps(chunk({"content": "x" * PIECE}))
            for _ in range((self.body_bytes or 0) // PIECE):
                await sse.send(event)
        if behaviour in (Behaviour.endless_stream, Behaviour.slow_endless_stream):
            pause = self.delay if behaviour is Behaviour.slow_endless_stream else 0
            more = orjson.dumps(chunk({"content": "more "}))
            return await self.streams.endless(sse, more, pause)
        if tool:
            call = self.reply.tool_call
            assert call is not None
            await sse.send(
                chunk({"tool_calls": [{"index": 0, **self._tool_call(with_arguments=False)}]})
            )
            arguments = orjson.dumps(call.arguments).decode()
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                await sse.send(
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                )
            finish = "tool_calls"
        else:
            words = self.reply.words()
            for i, word in enumerate(words):
                if behaviour is Behaviour.cut_stream and i == len(words) // 2:
                    return await self.cut(request, sse.response)
                await sse.send(chunk({"content": word}))
            finish = self.reply.finish_reason
        await sse.send(chunk({}, finish))
        if include_usage and self.reply.report_usage:
            await sse.send({**base, "choices": [], "usage": self._usage()})
        await sse.send(b"[DONE]")
        return sse.response
