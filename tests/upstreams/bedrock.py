"""A fake Amazon Bedrock: the runtime's Converse and ConverseStream, and the control plane's
ListFoundationModels, on one server.

Routes: ``POST /model/{modelId}/converse`` (JSON), ``POST /model/{modelId}/converse-stream``
(``application/vnd.amazon.eventstream``: binary frames of prelude, headers, JSON payload and
CRC32s, written by the small encoder here) and ``GET /foundation-models``.

Every request must be signed with SigV4 the way AWS checks it: the ``Authorization`` header's
shape (``AWS4-HMAC-SHA256 Credential=<akid>/<yyyymmdd>/<region>/bedrock/aws4_request,
SignedHeaders=…, Signature=<64 hex>``), an access key id the fake knows (``credentials``), the
fake's ``region`` and the service ``bedrock`` in the scope, ``host`` and ``x-amz-date`` signed,
and the signature itself, recomputed here from the request as received with the key's secret
(written from the SigV4 specification, not with botocore). Refusals are AWS's: 403
``UnrecognizedClientException``, ``InvalidSignatureException`` … in the ``x-amzn-ErrorType``
header and a ``{"message"}`` body. An unknown model id is a ``ValidationException``, as Bedrock
answers it.

``fail_with`` makes the next requests fail with an AWS error by name; ``stream_exception``
ends a stream with an exception frame after its first text.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote

import orjson
from aiohttp import web

from tests.upstreams.base import Behaviour, FakeUpstream

STATUS = {
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "ServiceQuotaExceededException": 400,
    "AccessDeniedException": 403,
    "UnrecognizedClientException": 403,
    "InvalidSignatureException": 403,
    "IncompleteSignatureException": 403,
    "MissingAuthenticationTokenException": 403,
    "ExpiredTokenException": 403,
    "ValidationException": 400,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<akid>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/"
    r"(?P<service>[^/,\s]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
BLOCKS = {"text", "toolUse", "toolResult", "image", "document", "cachePoint", "reasoningContent"}
UNRESERVED = "-_.~"


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total and headers length), its CRC32, the headers
    (string values, type 7), the payload and the message's CRC32, all big-endian."""
    encoded = b"".join(
        len(name.encode()).to_bytes(1, "big")
        + name.encode()
        + b"\x07"
        + len(value.encode()).to_bytes(2, "big")
        + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = total.to_bytes(4, "big") + len(encoded).to_bytes(4, "big")
    message = prelude + zlib.crc32(prelude).to_bytes(4, "big") + encoded + payload
    return message + zlib.crc32(message).to_bytes(4, "big")


def event(kind: str, body: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, orjson.dumps(body))


def exception(name: str, message: str) -> bytes:
    headers = {
        ":exception-type": name,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return frame(headers, orjson.dumps({"message": message}))


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signature(
    secret: str, request: web.Request, body: bytes, found: dict[str, str], amz_date: str
) -> str:
    """SigV4 recomputed from the request as received (non-S3 rules: the path encoded again)."""
    path = request.raw_path.split("?", 1)[0]
    query = request.raw_path.split("?", 1)[1] if "?" in request.raw_path else ""
    pairs = sorted(
        (quote(k, safe=UNRESERVED), quote(v, safe=UNRESERVED))
        for k, v in parse_qsl(query, keep_blank_values=True)
    )
    signed = found["signed"].split(";")
    canonical = "\n".join(
        [
            request.method,
            quote(path, safe="/~"),
            "&".join(f"{k}={v}" for k, v in pairs),
            "".join(
                f"{name}:{' '.join(request.headers.get(name, '').split())}\n" for name in signed
            ),
            found["signed"],
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{found['date']}/{found['region']}/{found['service']}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(("AWS4" + secret).encode(), found["date"])
    for part in (found["region"], found["service"], "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def problem(body: Any) -> str | None:
    """What makes ``body`` an invalid Converse request, or None (Bedrock's words)."""
    if not isinstance(body, dict):
        return "Malformed input request, please reformat your input and try again."
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "A conversation must start with a user message."
    uses_tools = False
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            return f"1 validation error detected: Value at 'messages.{i + 1}.member.role' failed"
        if (i == 0 and role != "user") or (i > 0 and messages[i - 1]["role"] == role):
            return (
                "A conversation must alternate between user and assistant roles. Make sure "
                "the conversation alternates between user and assistant roles and try again."
            )
        content = message.get("content")
        if not isinstance(content, list) or not content:
            return f"The content field in the Message object at messages.{i} is empty."
        for block in content:
            if not isinstance(block, dict) or len(block) != 1 or next(iter(block)) not in BLOCKS:
                return f"Invalid content block in messages.{i}."
            if "text" in block and not str(block["text"]).strip():
                return (
                    f"The text field in the ContentBlock object at messages.{i}.content.0 is "
                    "blank. Add text to the text field, and try again."
                )
            if "toolUse" in block or "toolResult" in block:
                uses_tools = True
    if uses_tools and not body.get("toolConfig"):
        return (
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        )
    config = body.get("inferenceConfig") or {}
    temperature = config.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        return "The value at inferenceConfig.temperature must be between 0 and 1."
    max_tokens = config.get("maxTokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        return "The value at inferenceConfig.maxTokens must be at least 1."
    for tool in (body.get("toolConfig") or {}).get("tools", []):
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            return "toolConfig.tools: each tool needs a toolSpec with a name"
        if not isinstance((spec.get("inputSchema") or {}).get("json"), dict):
            return "toolConfig.tools: each toolSpec needs inputSchema.json"
    system = body.get("system")
    if system is not None and (
        not isinstance(system, list) or any(not isinstance(s, dict) for s in system)
    ):
        return "system must be a list of blocks"
    return None


class FakeBedrock(FakeUpstream):
    def __init__(
        self,
        *,
        credentials: dict[str, str] | None = None,
        region: str = "us-east-1",
        models: tuple[str, ...] = (
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            "meta.llama3-8b-instruct-v1:0",
        ),
    ) -> None:
        super().__init__(api_key=None, models=models)  # the signature is checked here instead
        self.credentials = dict(credentials or {})  # access key id -> secret access key
        self.region = region
        self.fail_with: list[str] = []  # AWS error names, one per request, in order
        self.stream_exception: str | None = None  # e.g. "throttlingException"
        self.signed_with: list[str] = []  # the access key id of each accepted request
        self.session_tokens: list[str | None] = []

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/model/{model_id}/converse", self.converse)
        app.router.add_post("/model/{model_id}/converse-stream", self.converse_stream)
        app.router.add_get("/foundation-models", self.list_models)

    def error_response(self, status: int, message: str) -> web.Response:
        name = {
            401: "UnrecognizedClientException",
            404: "ResourceNotFoundException",
            429: "ThrottlingException",
            500: "InternalServerException",
        }.get(status, "ValidationException")
        return self.aws_error(name, message)

    def aws_error(self, name: str, message: str, status: int | None = None) -> web.Response:
        response = self.json({"message": message}, status or STATUS[name])
        response.headers["x-amzn-ErrorType"] = (
            f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"
        )
        response.headers["x-amzn-RequestId"] = "00000000-0000-4000-8000-000000000000"
        return response

    def check_signature(self, request: web.Request, body: bytes) -> web.Response | None:
        header = request.headers.get("Authorization")
        if not header:
            return self.aws_error(
                "MissingAuthenticationTokenException", "Missing Authentication Token"
            )
        found = AUTHORIZATION.fullmatch(header)
        if found is None:
            return self.aws_error(
                "IncompleteSignatureException",
                "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
                "parameters in the AWS4-HMAC-SHA256 form.",
            )
        parts = found.groupdict()
        secret = self.credentials.get(parts["akid"])
        if secret is None:
            return self.aws_error(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        if parts["region"] != self.region:
            return self.aws_error(
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region, not '{parts['region']}'. "
                f"This endpoint serves '{self.region}'.",
            )
        if parts["service"] != "bedrock":
            return self.aws_error(
                "InvalidSignatureException",
                "Credential should be scoped to correct service: 'bedrock'.",
            )
        signed = parts["signed"].split(";")
        amz_date = request.headers.get("X-Amz-Date", "")
        if "host" not in signed or "x-amz-date" not in signed or not amz_date:
            return self.aws_error(
                "IncompleteSignatureException", "host and x-amz-date must be signed."
            )
        try:
            when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return self.aws_error("IncompleteSignatureException", "X-Amz-Date is malformed.")
        if amz_date[:8] != parts["date"] or abs(datetime.now(UTC) - when) > timedelta(minutes=5):
            return self.aws_error("InvalidSignatureException", "Signature expired.")
        if not hmac.compare_digest(
            signature(secret, request, body, parts, amz_date), parts["signature"]
        ):
            return self.aws_error(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you "
                "provided. Check your AWS Secret Access Key and signing method.",
            )
        self.signed_with.append(parts["akid"])
        self.session_tokens.append(request.headers.get("X-Amz-Security-Token"))
        return None

    async def _admit(
        self, request: web.Request, model: str | None
    ) -> tuple[Any, Behaviour, web.StreamResponse | None]:
        """The body, the behaviour, and the refusal when there is one."""
        body = await self.record(request)
        behaviour = self.next_behaviour()
        refused: web.StreamResponse | None = self.check_signature(request, await request.read())
        if refused is None and self.fail_with:
            name = self.fail_with.pop(0)
            refused = self.aws_error(name, f"{name} (fake)")
        if refused is None and behaviour is Behaviour.model_not_found:
            refused = self.aws_error("ResourceNotFoundException", "Model not found.")
        if refused is None and model is not None and model not in self.models:
            refused = self.aws_error(
                "ValidationException", "The provided model identifier is invalid."
            )
        if refused is None and model is not None:
            error = problem(body)
            if error is not None:
                refused = self.aws_error("ValidationException", error)
        if refused is None:
            refused = await self.refuse(request, behaviour, None)
        return body, behaviour, refused

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        _, _, refused = await self._admit(request, None)
        if refused is not None:
            return refused
        summaries = [
            {
                "modelArn": f"arn:aws:bedrock:{self.region}::foundation-model/{m}",
                "modelId": m,
                "modelName": m,
                "providerName": m.split(".", 1)[0],
                "inputModalities": ["TEXT"],
                "outputModalities": ["TEXT"],
                "responseStreamingSupported": True,
                "customizationsSupported": [],
                "inferenceTypesSupported": ["ON_DEMAND"],
                "modelLifecycle": {"status": "ACTIVE"},
            }
            for m in self.models
        ]
        summaries.append(
            {
                "modelArn": f"arn:aws:bedrock:{self.region}::foundation-model/amazon.titan-embed",
                "modelId": "amazon.titan-embed-text-v2:0",
                "modelName": "Titan Text Embeddings V2",
                "providerName": "Amazon",
                "inputModalities": ["TEXT"],
                "outputModalities": ["EMBEDDING"],
                "responseStreamingSupported": False,
                "customizationsSupported": [],
                "inferenceTypesSupported": ["ON_DEMAND"],
                "modelLifecycle": {"status": "ACTIVE"},
            }
        )
        return self.json({"modelSummaries": summaries})

    def _answer(self, body: dict[str, Any]) -> tuple[bool, str]:
        """Whether the answer is a tool call, and the stop reason."""
        offered = bool((body.get("toolConfig") or {}).get("tools"))
        if offered and self.reply.tool_call is not None:
            return True, "tool_use"
        finish = self.reply.finish_reason
        return False, STOP_REASONS.get(finish, finish)

    def _usage(self) -> dict[str, int]:
        r = self.reply
        fresh = r.prompt_tokens - r.cached_tokens - r.cache_write_tokens
        usage = {
            "inputTokens": fresh,  # Bedrock's inputTokens leaves the cache out
            "outputTokens": r.completion_tokens,
            "totalTokens": r.prompt_tokens + r.completion_tokens,
        }
        if r.cached_tokens or r.cache_write_tokens:
            usage["cacheReadInputTokens"] = r.cached_tokens
            usage["cacheWriteInputTokens"] = r.cache_write_tokens
        return usage

    async def converse(self, request: web.Request) -> web.StreamResponse:
        body, behaviour, refused = await self._admit(request, request.match_info["model_id"])
        if refused is not None:
            return refused
        if behaviour is Behaviour.malformed:
            return self.malformed()
        tool, stop = self._answer(body)
        if tool:
            call = self.reply.tool_call
            assert call is not None
            block: dict[str, Any] = {
                "toolUse": {"toolUseId": call.id, "name": call.name, "input": call.arguments}
            }
        else:
            block = {"text": self.reply.text}
        return self.json(
            {
                "output": {"message": {"role": "assistant", "content": [block]}},
                "stopReason": stop,
                "usage": self._usage(),
                "metrics": {"latencyMs": 12},
            }
        )

    async def converse_stream(self, request: web.Request) -> web.StreamResponse:
        body, behaviour, refused = await self._admit(request, request.match_info["model_id"])
        if refused is not None:
            return refused
        response = web.StreamResponse(
            headers={"Content-Type": "application/vnd.amazon.eventstream"}
        )
        await response.prepare(request)
        tool, stop = self._answer(body)
        await response.write(event("messageStart", {"role": "assistant", "p": "abcd"}))
        if behaviour is Behaviour.malformed:
            await response.write(frame({":event-type": "contentBlockDelta"}, b'{"delta": '))
            return response
        if tool:
            call = self.reply.tool_call
            assert call is not None
            start = {"toolUse": {"toolUseId": call.id, "name": call.name}}
            await response.write(
                event("contentBlockStart", {"contentBlockIndex": 0, "start": start})
            )
            arguments = orjson.dumps(call.arguments).decode()
            half = len(arguments) // 2
            for i, piece in enumerate((arguments[:half], arguments[half:])):
                if behaviour is Behaviour.cut_stream and i == 1:
                    return await self.cut(request, response)
                delta = {"toolUse": {"input": piece}}
                await response.write(
                    event("contentBlockDelta", {"contentBlockIndex": 0, "delta": delta})
                )
        else:
            words = self.reply.words()
            for i, word in enumerate(words):
                if behaviour is Behaviour.cut_stream and i == len(words) // 2:
                    return await self.cut(request, response)
                if self.stream_exception and i == 1:
                    name = self.stream_exception
                    await response.write(exception(name, f"{name} mid-stream (fake)"))
                    return response
                await response.write(
                    event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": word}})
                )
        await response.write(event("contentBlockStop", {"contentBlockIndex": 0}))
        await response.write(event("messageStop", {"stopReason": stop}))
        await response.write(
            event("metadata", {"usage": self._usage(), "metrics": {"latencyMs": 12}})
        )
        return response
