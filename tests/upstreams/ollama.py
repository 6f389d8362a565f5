"""A fake Ollama native API server.

Routes: ``POST /api/chat`` (one JSON object, or NDJSON lines ending in one with ``"done": true``;
``stream`` defaults to true when the body leaves it out, as in Ollama), ``GET /api/tags``,
``GET /api/version`` and ``GET /`` ("Ollama is running"). Errors: ``{"error": "message"}``.

Ollama has no API key of its own: make the fake with ``api_key=None``. With a key, every route
wants ``Authorization: Bearer <key>``, as Ollama behind a proxy or ollama.com does.

Model names follow Ollama's tags: ``fake-model`` and ``fake-model:latest`` are the same model,
and ``/api/tags`` lists every name with its tag. Tool call arguments are JSON objects, not
strings, both in requests and in answers.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson
from aiohttp import web

from tests.upstreams.base import Behaviour, FakeUpstream

CREATED_AT = "2025-01-01T00:00:00Z"
VERSION = "0.6.0"
ROLES = {"system", "user", "assistant", "tool"}
OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "temperature": (int, float),
    "top_p": (int, float),
    "top_k": (int,),
    "num_predict": (int,),
    "num_ctx": (int,),
    "seed": (int,),
    "repeat_penalty": (int, float),
}

# Reply.finish_reason is written in OpenAI's words by most tests; Ollama's own pass through.
DONE_REASONS = {"stop": "stop", "length": "length", "tool_calls": "stop", "content_filter": "stop"}

# What base.refuse says, in the words Ollama (or the proxy in front of it) uses.
NOT_FOUND = re.compile(r"The model '(?P<model>.*)' does not exist\.")
MESSAGES = {401: "unauthorized", 429: "too many requests, try again later"}


def tagged(model: str) -> str:
    """``model`` with Ollama's default tag when it has none."""
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _cannot(value: Any, field: str, go_type: str) -> str:
    """Go's json decoder's message for a field of the wrong type."""
    return (
        f"json: cannot unmarshal {_go_type(value)} into Go struct field {field} of type {go_type}"
    )


def message_problem(message: Any, i: int) -> str | None:
    if not isinstance(message, dict):
        return _cannot(message, f"ChatRequest.messages[{i}]", "api.Message")
    role = message.get("role")
    if not isinstance(role, str):
        return _cannot(role, "Message.messages.role", "string")
    if role not in ROLES:
        return f"invalid role '{role}' in messages[{i}]"
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        return _cannot(content, "Message.messages.content", "string")
    images = message.get("images")
    if images is not None and (
        not isinstance(images, list) or any(not isinstance(x, str) for x in images)
    ):
        return _cannot(images, "Message.messages.images", "api.ImageData")
    tool_name = message.get("tool_name")
    if tool_name is not None and not isinstance(tool_name, str):
        return _cannot(tool_name, "Message.messages.tool_name", "string")
    calls = message.get("tool_calls")
    if calls is None:
        return None
    if not isinstance(calls, list):
        return _cannot(calls, "Message.messages.tool_calls", "[]api.ToolCall")
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            return _cannot(
                function, "ToolCall.messages.tool_calls.function", "api.ToolCallFunction"
            )
        if not isinstance(function.get("name"), str):
            return _cannot(
                function.get("name"), "ToolCallFunction.messages.tool_calls.function.name", "string"
            )
        if not isinstance(function.get("arguments"), dict):
            return _cannot(
                function.get("arguments"),
                "ToolCallFunction.messages.tool_calls.function.arguments",
                "api.ToolCallFunctionArguments",
            )
    return None


def problem(body: Any) -> str | None:
    """What makes ``body`` an invalid /api/chat request, or None."""
    if body is None:
        return "missing request body"
    if not isinstance(body, dict):
        return f"json: cannot unmarshal {_go_type(body)} into Go value of type api.ChatRequest"
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        return _cannot(model, "ChatRequest.model", "string")
    if not model:
        return "model is required"
    messages = body.get("messages")
    if messages is not None:
        if not isinstance(messages, list):
            return _cannot(messages, "ChatRequest.messages", "[]api.Message")
        for i, message in enumerate(messages):
            error = message_problem(message, i)
            if error:
                return error
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        return _cannot(stream, "ChatRequest.stream", "bool")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return _cannot(tools, "ChatRequest.tools", "api.Tools")
        for tool in tools:
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                return "invalid tool definition: function.name is required"
    fmt = body.get("format")
    if fmt is not None and fmt not in ("", "json") and not isinstance(fmt, dict):
        return f'invalid format: "{fmt}"; expected "json" or a valid JSON Schema'
    keep_alive = body.get("keep_alive")
    if keep_alive is not None and (
        isinstance(keep_alive, bool) or not isinstance(keep_alive, (str, int, float))
    ):
        return _cannot(keep_alive, "ChatRequest.keep_alive", "api.Duration")
    return options_problem(body.get("options"))


def options_problem(options: Any) -> str | None:
    if options is None:
        return None
    if not isinstance(options, dict):
        return _cannot(options, "ChatRequest.options", "map[string]interface {}")
    for name, kinds in OPTION_TYPES.items():
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            return f"option {name!r} must be of type {kinds[-1].__name__}"
    stop = options.get("stop")
    if stop is not None and (
        not isinstance(stop, list) or any(not isinstance(s, str) for s in stop)
    ):
        return "option 'stop' must be of type array of strings"
    return None


class FakeOllama(FakeUpstream):
    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/chat", self.chat)
        app.router.add_get("/api/tags", self.list_models)
        app.router.add_get("/api/version", self.version)
        app.router.add_get("/", self.root)

    def authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    def error_response(self, status: int, message: str) -> web.Response:
        found = NOT_FOUND.fullmatch(message) if status == 404 else None
        if found:
            message = f"model '{found['model']}' not found, try pulling it first"
        return self.json({"error": MESSAGES.get(status, message)}, status)

    def known(self, model: str) -> str | None:
        """The entry of ``models`` that ``model`` names, tag or no tag."""
        return next((m for m in self.models if tagged(m) == tagged(model)), None)

    # -- routes -------------------------------------------------------------------------------

    async def root(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        return web.Response(text="Ollama is running")

    async def version(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        refused = await self.refuse(request, self.next_behaviour(), None)
        return refused if refused is not None else self.json({"version": VERSION})

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        refused = await self.refuse(request, self.next_behaviour(), None)
        if refused is not None:
            return refused
        models = []
        for m in self.models:
            name = tagged(m)
            models.append(
                {
                    "name": name,
                    "model": name,
                    "modified_at": "2025-01-01T00:00:00.000000000Z",
                    "size": 2_019_393_189,
                    "digest": hashlib.sha256(name.encode()).hexdigest(),
                    "details": {
                        "parent_model": "",
                        "format": "gguf",
                        "family": "llama",
                        "families": ["llama"],
                        "parameter_size": "3.2B",
                        "quantization_level": "Q4_K_M",
                    },
                }
            )
        return self.json({"models": models})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        behaviour = self.next_behaviour()
        # A proxy checks the key before Ollama reads the body.
        if self.api_key is not None and not self.authorized(request):
            return self.error_response(401, "unauthorized")
        error = problem(body)
        if error:
            return self.error_response(400, error)
        model: str = body["model"]
        refused = await self.refuse(request, behaviour, self.known(model) or model)
        if refused is not None:
            return refused
        stream = body.get("stream", True)  # Ollama streams unless told not to
        if not body.get("messages"):
            # No messages: Ollama only loads the model and says so.
            answer = self._base(model) | {
                "message": {"role": "assistant", "content": ""},
                "done": True,
                "done_reason": "load",
            }
            if stream:
                response = await self._open(request)
                await self._send(response, answer)
                return response
            return self.json(answer)
        tool = bool(body.get("tools")) and self.reply.tool_call is not None
        if stream:
            return await self._stream(request, model, behaviour, tool)
        if behaviour is Behaviour.malformed:
            return web.Response(
                text=f'{{"model": "{model}", "message": {{"role": ',
                content_type="application/json",
            )
        message = (
            self._tool_message() if tool else {"role": "assistant", "content": self.reply.text}
        )
        return self.json(self._base(model) | {"message": message} | self._final())

    # -- answers ------------------------------------------------------------------------------

    @staticmethod
    def _base(model: str) -> dict[str, Any]:
        return {"model": model, "created_at": CREATED_AT}

    def _tool_message(self) -> dict[str, Any]:
        call = self.reply.tool_call
        assert call is not None
        return {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": call.name, "arguments": call.arguments}}],
        }

    def _final(self) -> dict[str, Any]:
        """The fields of the answer's last object: why it ended, timings and counts."""
        r = self.reply
        final: dict[str, Any] = {
            "done": True,
            "done_reason": DONE_REASONS.get(r.finish_reason, r.finish_reason),
            "total_duration": 1_250_000_000,
            "load_duration": 50_000_000,
            "prompt_eval_count": r.prompt_tokens,
            "prompt_eval_duration": 200_000_000,
            "eval_count": r.completion_tokens,
            "eval_duration": 1_000_000_000,
        }
        if not r.report_usage:
            del final["prompt_eval_count"], final["eval_count"]
        return final

    @staticmethod
    async def _open(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        return response

    @staticmethod
    async def _send(response: web.StreamResponse, line: dict[str, Any] | bytes) -> None:
        payload = line if isinstance(line, bytes) else orjson.dumps(line)
        await response.write(payload + b"\n")

    async def _stream(
        self, request: web.Request, model: str, behaviour: Behaviour, tool: bool
    ) -> web.StreamResponse:
        response = await self._open(request)
        base = self._base(model)
        if behaviour is Behaviour.malformed:
            await self._send(response, f'{{"model": "{model}", "message": {{'.encode())
            return response
        if tool:
            await self._send(response, base | {"message": self._tool_message(), "done": False})
        else:
            words = self.reply.words()
            for i, word in enumerate(words):
                if behaviour is Behaviour.cut_stream and i == len(words) // 2:
                    return await self.cut(request, response)
                message = {"role": "assistant", "content": word}
                await self._send(response, base | {"message": message, "done": False})
        empty = {"role": "assistant", "content": ""}
        await self._send(response, base | {"message": empty} | self._final())
        return response
