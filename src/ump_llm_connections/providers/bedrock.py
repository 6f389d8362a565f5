"""Amazon Bedrock's Converse API: ``POST /model/{modelId}/converse`` and ``/converse-stream``
(binary ``application/vnd.amazon.eventstream`` frames), every request signed with SigV4 for the
connection's region over the exact bytes sent (``aws.py``); the models from the control plane's
``ListFoundationModels`` (``GET /foundation-models``).

Translation: the system prompt goes to ``system``, temperature, max_tokens and stop sequences
to ``inferenceConfig``, tools to ``toolConfig`` (``toolSpec``; ``tool_choice`` auto, required
and a name map to ``auto``, ``any`` and ``tool``; Converse has no "none": the tools are then
offered with no choice forced). Tool calls come back as ``toolUse`` blocks, results go up as
``toolResult`` blocks in user turns. Errors are classified by their AWS name (the
``x-amzn-ErrorType`` header, else the body's ``__type``), in a stream by the exception frame's
``:exception-type``. A stream ends at ``messageStop`` followed by ``metadata`` (the usage).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import orjson
import yarl

from ump_llm_connections.providers import aws
from ump_llm_connections.providers.base import Adapter
from ump_llm_connections.providers.errors import ErrorKind, ProviderError
from ump_llm_connections.providers.reading import BodyTooLarge
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
    uncached_prompt_usage,
)

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
SKIPPED_BLOCKS = frozenset({"reasoningContent"})  # thinking: counted in the usage, not passed on
TOOL_CHOICES: dict[str, dict[str, Any]] = {"auto": {"auto": {}}, "required": {"any": {}}}
EVENTSTREAM = "application/vnd.amazon.eventstream"
PRELUDE_BYTES = 12
MIN_FRAME_BYTES = 16  # a prelude and the message's CRC

# AWS error names (x-amzn-ErrorType, __type, a stream's :exception-type) and their kinds.
ERROR_KINDS = {
    "ThrottlingException": ErrorKind.rate_limited,
    "TooManyRequestsException": ErrorKind.rate_limited,
    "ServiceQuotaExceededException": ErrorKind.rate_limited,
    "AccessDeniedException": ErrorKind.auth,
    "UnrecognizedClientException": ErrorKind.auth,
    "InvalidSignatureException": ErrorKind.auth,
    "SignatureDoesNotMatch": ErrorKind.auth,
    "IncompleteSignatureException": ErrorKind.auth,
    "MissingAuthenticationTokenException": ErrorKind.auth,
    "InvalidClientTokenId": ErrorKind.auth,
    "ExpiredTokenException": ErrorKind.auth,
    "ValidationException": ErrorKind.bad_request,
    "ResourceNotFoundException": ErrorKind.not_found,
    "ModelNotReadyException": ErrorKind.server_error,
    "ServiceUnavailableException": ErrorKind.server_error,
    "InternalServerException": ErrorKind.server_error,
    "ModelErrorException": ErrorKind.server_error,
    "ModelStreamErrorException": ErrorKind.server_error,
    "ModelTimeoutException": ErrorKind.timeout,
}
WHAT_TO_DO = {
    "AccessDeniedException": "the credentials may not use this model: allow "
    "bedrock:InvokeModel, bedrock:InvokeModelWithResponseStream and "
    "bedrock:ListFoundationModels, and request access to the model in the Bedrock console",
    "ExpiredTokenException": "the AWS session token has expired: give the server fresh credentials",
    "ServiceQuotaExceededException": "a Bedrock quota of the account is used up",
    "ModelNotReadyException": "Bedrock is still loading the model: try again shortly",
    "ModelTimeoutException": "the model took too long: ask for fewer tokens",
    "ValidationException": "Bedrock refused the request as sent",
}


class BedrockAdapter(Adapter):
    api_format = "bedrock"

    @property
    def region(self) -> str:
        if not self.target.aws_region:
            raise self._error(ErrorKind.bad_request, "aws_region is required for Bedrock")
        return self.target.aws_region

    # -- requests -----------------------------------------------------------------------------

    def chat_call(self, request: ChatRequest, *, stream: bool) -> HttpCall:
        body: dict[str, Any] = {"messages": _messages(request.conversation())}
        system = request.system_prompt()
        if system:
            body["system"] = [{"text": system}]
        config: dict[str, Any] = {}
        if request.max_tokens is not None:
            config["maxTokens"] = request.max_tokens
        if request.temperature is not None:
            config["temperature"] = min(request.temperature, 1.0)  # Converse's range is 0..1
        if request.stop:
            config["stopSequences"] = request.stop
        if config:
            body["inferenceConfig"] = config
        if request.tools:
            tool_config: dict[str, Any] = {
                "tools": [
                    {
                        "toolSpec": {
                            "name": t.name,
                            **({"description": t.description} if t.description else {}),
                            "inputSchema": {"json": t.parameters},
                        }
                    }
                    for t in request.tools
                ]
            }
            choice = request.tool_choice
            if choice and choice != "none":
                tool_config["toolChoice"] = TOOL_CHOICES.get(choice, {"tool": {"name": choice}})
            body["toolConfig"] = tool_config
        model = quote(self.target.model, safe="")
        action = "converse-stream" if stream else "converse"
        accept = EVENTSTREAM if stream else "application/json"
        url = f"{self.target.base_url.rstrip('/')}/model/{model}/{action}"
        return HttpCall("POST", url, {"Accept": accept}, body)

    def models_call(self) -> HttpCall:
        return HttpCall("GET", self.control_plane() + "/foundation-models", {})

    def control_plane(self) -> str:
        """Bedrock's control plane beside the runtime: ``bedrock.{region}.amazonaws.com`` for an
        AWS host, the base_url itself for any other (a proxy, an emulator)."""
        base = self.target.base_url.rstrip("/")
        host = urlsplit(base).hostname or ""
        if host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
            if "bedrock-runtime" in host:
                return "https://" + host.replace("bedrock-runtime", "bedrock", 1)
            return f"https://bedrock.{self.region}.amazonaws.com"
        return base

    async def send(self, call: HttpCall, limits: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
        """Signed over the exact bytes and the URL exactly as sent (the model id in it stays
        percent-encoded: yarl must not re-encode what was signed)."""
        data = orjson.dumps(call.body) if call.body is not None else b""
        credentials = await aws.credentials_for(self.target.aws_access_key_id, self.target.api_key)
        return await self.http.request(
            call.method,
            yarl.URL(call.url, encoded=True),
            data=data or None,
            headers=aws.sign(
                call.method,
                call.url,
                data,
                self.wire_headers(call),
                region=self.region,
                credentials=credentials,
            ),
            timeout=limits,
            allow_redirects=False,
        )

    # -- answers ------------------------------------------------------------------------------

    def parse_response(self, body: Any) -> ChatResponse:
        text: list[str] = []
        calls: list[ToolCall] = []
        for block in body["output"]["message"]["content"]:
            if "text" in block:
                text.append(block["text"])
            elif "toolUse" in block:
                use = block["toolUse"]
                calls.append(
                    self.object_tool_call(
                        use["toolUseId"], use["name"], use.get("input"), "toolUse"
                    )
                )
            elif not SKIPPED_BLOCKS & block.keys():
                raise self.untranslatable("content block", next(iter(block), "empty"))
        reason = body.get("stopReason")
        return ChatResponse(
            text="".join(text),
            tool_calls=calls,
            finish_reason=STOP_REASONS.get(reason or "", reason),
            usage=_usage(counts(body.get("usage"))),
            model=self.target.model,
        )

    async def parse_stream(self, response: aiohttp.ClientResponse) -> AsyncIterator[StreamChunk]:
        tool_index: dict[int, int] = {}  # content block index → tool call index
        stopped = measured = False
        async for headers, payload in self._frames(response):
            kind = headers.get(":message-type")
            if kind == "exception":
                raise self._stream_error(str(headers.get(":exception-type")), payload)
            if kind == "error":
                raise self._error(
                    ErrorKind.server_error,
                    f"{self.target.host} failed mid-stream "
                    f"({self.detail(str(headers.get(':error-code')))}: "
                    f"{self.detail(str(headers.get(':error-message')))})",
                )
            event = headers.get(":event-type")
            body = orjson.loads(payload) if payload else {}
            if event == "contentBlockStart":
                start = body["start"]
                if "toolUse" not in start:
                    raise self.untranslatable("content block", next(iter(start), "empty"))
                tool_index[body["contentBlockIndex"]] = index = len(tool_index)
                use = start["toolUse"]
                yield StreamChunk(
                    tool_calls=[ToolCallDelta(index=index, id=use["toolUseId"], name=use["name"])]
                )
            elif event == "contentBlockDelta":
                delta = body["delta"]
                if "text" in delta:
                    yield StreamChunk(text=delta["text"])
                elif "toolUse" in delta:
                    index = tool_index[body["contentBlockIndex"]]
                    arguments = delta["toolUse"]["input"]
                    yield StreamChunk(tool_calls=[ToolCallDelta(index=index, arguments=arguments)])
                elif not SKIPPED_BLOCKS & delta.keys():
                    raise self.untranslatable("content delta", next(iter(delta), "empty"))
            elif event == "messageStop":
                stopped = True
                reason = body.get("stopReason")
                yield StreamChunk(finish_reason=STOP_REASONS.get(reason or "", reason))
            elif event == "metadata":
                measured = True
                yield StreamChunk(usage=_usage(counts(body.get("usage"))))
            # messageStart, contentBlockStop and events added later carry nothing to pass on
            if stopped and measured:
                return
        raise self.incomplete()

    async def _frames(
        self, response: aiohttp.ClientResponse
    ) -> AsyncIterator[tuple[Mapping[str, Any], bytes]]:
        """The stream's messages as (headers, payload), each checked by botocore (prelude and
        message CRC32s); none past ``max_response_bytes``."""
        await aws.load_botocore()
        from botocore.eventstream import EventStreamBuffer, ParserError

        limit = self.target.max_response_bytes
        pending = bytearray()
        content = response.content
        while chunk := await content.readany():
            pending += chunk
            while len(pending) >= PRELUDE_BYTES:
                size = int.from_bytes(pending[:4], "big")
                if size > limit:
                    raise BodyTooLarge
                if size < MIN_FRAME_BYTES:
                    raise self._damaged()
                if len(pending) < size:
                    break
                decoder = EventStreamBuffer()
                decoder.add_data(bytes(pending[:size]))
                del pending[:size]
                try:
                    message = next(decoder)
                except (ParserError, StopIteration):
                    raise self._damaged() from None
                headers: Mapping[str, Any] = message.headers  # type: ignore[assignment]
                yield headers, message.payload
            if len(pending) > limit:
                raise BodyTooLarge

    def _damaged(self) -> ProviderError:
        return self._error(
            ErrorKind.bad_response, f"{self.target.host} sent a damaged event-stream frame"
        )

    def _stream_error(self, name: str, payload: bytes) -> ProviderError:
        aws_name = name[:1].upper() + name[1:]  # throttlingException → ThrottlingException
        kind = ERROR_KINDS.get(aws_name, ErrorKind.server_error)
        try:
            found = orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError:
            found = {}
        said = self.error_detail(found)
        return self._error(
            kind,
            f"{self.target.host} failed mid-stream with {self.detail(aws_name)}"
            + (f" ({self.detail(said)})" if said else ""),
        )

    def parse_models(self, body: Any) -> list[str]:
        return [
            str(m["modelId"])
            for m in body["modelSummaries"]
            if "TEXT" in m.get("outputModalities", ["TEXT"])
        ]

    # -- errors -------------------------------------------------------------------------------

    def classify(self, status: int, body: Any, headers: Mapping[str, str]) -> tuple[ErrorKind, str]:
        name = _error_name(headers.get("x-amzn-ErrorType"), body)
        kind = ERROR_KINDS.get(name or "")
        if name is None or kind is None:
            return super().classify(status, body, headers)
        host, region, model = self.target.host, self.target.aws_region, self.target.model
        said = f"{status} {self.detail(name)} from {host}"
        if name in WHAT_TO_DO:
            return kind, f"{said}: {WHAT_TO_DO[name]}"
        if kind is ErrorKind.auth:
            return kind, (
                f"{said}: check the AWS credentials (aws_access_key_id and the secret access "
                "key in api_key, or the server's AWS credentials) and the region "
                f"'{region}' they are signed for"
            )
        if kind is ErrorKind.not_found:
            return kind, (
                f"{said}: check the model id '{model}' (a Bedrock model or inference profile "
                f"id) and that region '{region}' offers it"
            )
        if kind is ErrorKind.rate_limited:
            return kind, f"{said}: throttled by Bedrock"
        return kind, f"{said}: Bedrock failed"

    def error_detail(self, body: Any) -> str | None:
        if isinstance(body, dict):
            message = body.get("message") or body.get("Message")
            if message:
                return str(message)
        return super().error_detail(body)


def _error_name(header: str | None, body: Any) -> str | None:
    """``ValidationException`` from ``ValidationException:http://…`` or
    ``com.amazon.coral.service#ValidationException``."""
    raw = header
    if not raw and isinstance(body, dict):
        raw = body.get("__type") or body.get("code")
    if not raw:
        return None
    return str(raw).split(":", 1)[0].rsplit("#", 1)[-1].strip() or None


def _usage(found: dict[str, int]) -> Usage:
    """Bedrock's ``inputTokens`` leaves the cache out (``totalTokens`` is all four counts):
    the prompt is it plus the cache's reads and writes."""
    return uncached_prompt_usage(
        found,
        fresh="inputTokens",
        read="cacheReadInputTokens",
        write="cacheWriteInputTokens",
        output="outputTokens",
    )


def _messages(conversation: list[Message]) -> list[dict[str, Any]]:
    """Turns of content blocks; tool results ride in user turns, and turns of one role in a
    row are merged (Converse wants the roles to alternate)."""
    out: list[dict[str, Any]] = []
    for m in conversation:
        role = "assistant" if m.role == "assistant" else "user"
        blocks: list[dict[str, Any]] = []
        if m.role == "tool":
            blocks.append(
                {
                    "toolResult": {
                        "toolUseId": m.tool_call_id or "",
                        "content": [{"text": m.content or ""}],
                    }
                }
            )
        else:
            if m.content or not m.tool_calls:
                blocks.append({"text": m.content or ""})
            blocks += [
                {"toolUse": {"toolUseId": c.id, "name": c.name, "input": c.arguments_object()}}
                for c in m.tool_calls
            ]
        if out and out[-1]["role"] == role:
            out[-1]["content"] += blocks
        else:
            out.append({"role": role, "content": blocks})
    return out
