"""A fake Google Gemini API (generativelanguage.googleapis.com), under ``/v1`` and ``/v1beta``.

Routes: ``POST /{v}/models/{model}:generateContent`` (JSON),
``POST /{v}/models/{model}:streamGenerateContent?alt=sse`` (SSE ``data:`` events, each a whole
GenerateContentResponse with one part, the last with ``finishReason`` and ``usageMetadata``; no
end marker), ``POST /{v}/models/{model}:countTokens``, ``GET /{v}/models`` and
``GET /{v}/models/{model}``. The model may be spelt ``fake-model`` or ``models/fake-model``.
The key goes in an ``x-goog-api-key`` header; a ``?key=`` query parameter is refused (401).
Errors: ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.upstreams.base import SSE, Behaviour, FakeUpstream

STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
}
FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS"}
ROLES = {"user", "model"}
# GenerateContentRequest's fields; proto JSON accepts the lowerCamelCase and the original names.
REQUEST_FIELDS = {
    "model",
    "contents",
    "systemInstruction",
    "system_instruction",
    "generationConfig",
    "generation_config",
    "tools",
    "toolConfig",
    "tool_config",
    "safetySettings",
    "safety_settings",
    "cachedContent",
    "cached_content",
}


class FakeGemini(FakeUpstream):
    def add_routes(self, app: web.Application) -> None:
        version = "{version:v1|v1beta}"
        app.router.add_get(f"/{version}/models", self.list_models)
        app.router.add_get(f"/{version}/models/{{name:.+}}", self.get_model)
        app.router.add_post(f"/{version}/models/{{name:.+}}", self.model_action)

    def authorized(self, request: web.Request) -> bool:
        if "key" in request.query:  # keys belong in a header, never in the URL
            return False
        return request.headers.get("x-goog-api-key") == self.api_key

    def error_response(self, status: int, message: str) -> web.Response:
        if status == 401:  # Gemini answers a bad key with 400 and the reason API_KEY_INVALID
            return self.json(
                {
                    "error": {
                        "code": 400,
                        "message": "API key not valid. Please pass a valid API key.",
                        "status": "INVALID_ARGUMENT",
                        "details": [
                            {
                                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                "reason": "API_KEY_INVALID",
                                "domain": "googleapis.com",
                            }
                        ],
                    }
                },
                400,
            )
        code = STATUSES.get(status, "UNKNOWN")
        return self.json({"error": {"code": status, "message": message, "status": code}}, status)

    # -- models -------------------------------------------------------------------------------

    @staticmethod
    def bare(name: str) -> str:
        return name.removeprefix("models/")

    def describe(self, model: str) -> dict[str, Any]:
        return {
            "name": f"models/{model}",
            "version": "001",
            "displayName": model,
            "description": f"The fake {model}.",
            "inputTokenLimit": 1_048_576,
            "outputTokenLimit": 8_192,
            "supportedGenerationMethods": ["generateContent", "countTokens"],
        }

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        refused = await self.refuse(request, self.next_behaviour(), None)
        if refused is not None:
            return refused
        return self.json({"models": [self.describe(m) for m in self.models]})

    async def get_model(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        model = self.bare(request.match_info["name"])
        refused = await self.refuse(request, self.next_behaviour(), model)
        if refused is not None:
            return refused
        return self.json(self.describe(model))

    # -- generation ---------------------------------------------------------------------------

    async def model_action(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        name, colon, action = request.match_info["name"].rpartition(":")
        if not colon or action not in {"generateContent", "streamGenerateContent", "countTokens"}:
            return self.error_response(404, f"Method not found: {request.path}")
        model = self.bare(name)
        behaviour = self.next_behaviour()
        refused = await self.refuse(request, behaviour, model)
        if refused is not None:
            return refused
        problem = self.invalid(body)
        if problem is not None:
            return self.error_response(400, problem)
        assert isinstance(body, dict)
        if action == "countTokens":
            return self.json({"totalTokens": self.reply.prompt_tokens})
        tool = self.reply.tool_call is not None and bool(body.get("tools"))
        if action == "streamGenerateContent":
            if request.query.get("alt") != "sse":
                return self.error_response(400, "This fake streams only with ?alt=sse.")
            return await self._stream(request, model, behaviour, tool)
        if behaviour is Behaviour.malformed:
            return web.Response(
                text='{"candidates": [{"content": ', content_type="application/json"
            )
        parts = [self._function_call()] if tool else [{"text": self.reply.text}]
        return self.json(self._response(model, parts, final=True))

    @staticmethod
    def invalid(body: Any) -> str | None:
        """Why Gemini would answer 400 INVALID_ARGUMENT, or None."""
        if not isinstance(body, dict):
            return "Invalid JSON payload received."
        unknown = sorted(set(body) - REQUEST_FIELDS)
        if unknown:
            return f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
        contents = body.get("contents")
        if not contents or not isinstance(contents, list):
            return "* GenerateContentRequest.contents: contents is not specified"
        for i, content in enumerate(contents):
            if not isinstance(content, dict) or not content.get("parts"):
                where = f"GenerateContentRequest.contents[{i}].parts"
                return f"* {where}: contents.parts must not be empty."
            role = content.get("role")
            if role is not None and role not in ROLES:
                return "Please use a valid role: user, model."
        return None

    def _function_call(self) -> dict[str, Any]:
        call = self.reply.tool_call
        assert call is not None
        return {"functionCall": {"name": call.name, "args": call.arguments}}

    def _response(self, model: str, parts: list[dict[str, Any]], *, final: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        answer: dict[str, Any] = {"candidates": [candidate]}
        if final:
            reason = self.reply.finish_reason
            candidate["finishReason"] = FINISH_REASONS.get(reason, reason.upper())
            if self.reply.report_usage:
                r = self.reply
                # Gemini counts the thoughts apart from the candidates
                answer["usageMetadata"] = {
                    "promptTokenCount": r.prompt_tokens,
                    "candidatesTokenCount": r.completion_tokens - r.reasoning_tokens,
                    "totalTokenCount": r.prompt_tokens + r.completion_tokens,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": r.prompt_tokens}],
                }
                if r.cached_tokens:
                    answer["usageMetadata"]["cachedContentTokenCount"] = r.cached_tokens
                if r.reasoning_tokens:
                    answer["usageMetadata"]["thoughtsTokenCount"] = r.reasoning_tokens
        answer["modelVersion"] = model
        answer["responseId"] = "fake-response-1"
        return answer

    async def _stream(
        self, request: web.Request, model: str, behaviour: Behaviour, tool: bool
    ) -> web.StreamResponse:
        sse = await SSE.open(request)
        if behaviour is Behaviour.malformed:
            await sse.send(b'{"candidates": [{"content": ')
            return sse.response
        if tool:
            await sse.send(self._response(model, [self._function_call()], final=True))
            return sse.response
        words = self.reply.words()
        for i, word in enumerate(words):
            if behaviour is Behaviour.cut_stream and i == len(words) // 2:
                return await self.cut(request, sse.response)
            final = i == len(words) - 1
            await sse.send(self._response(model, [{"text": word}], final=final))
        return sse.response
