"""A connection (or pool) as the SDK hands it out, and what a call to it returns.

Every call goes through the server's ``/v1`` gateway with the official ``openai`` client: the SDK
never sees a provider key. The call's source (``X-UMP-Source``) is the integration the
connection was fetched for; a token bound to sources decides it instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ump_llm_connections.sdk.errors import UMPError

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion

    from ump_llm_connections.sdk.livekit import GatewayLLM
    from ump_llm_connections.sdk.manager import ConnectionManager

__all__ = ["Connection", "LLMResponse", "ToolCall", "Usage"]

Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function the model asked for. ``arguments`` is the parsed JSON (``{}`` when the model
    sent something that is not a JSON object; ``raw_arguments`` keeps what it sent)."""

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str


@dataclass(frozen=True, slots=True)
class LLMResponse:
    text: str
    tool_calls: list[ToolCall]
    usage: Usage | None
    latency_ms: float
    connection: Connection
    model: str  # the model the upstream says answered
    finish_reason: str | None


@dataclass(slots=True)
class Connection:
    """A connection, or a pool (``kind == "pool"``: the gateway picks one of its members per
    call). Fields are the server's at the time it was fetched."""

    id: str
    name: str
    kind: Literal["connection", "pool"]
    connection_type: str | None
    model_name: str | None
    description: str
    temperature: float | None
    max_tokens: int | None
    timeout: float | None
    tags: list[str]
    use_in_livekit: bool
    use_in_mcp: bool
    use_in_automation: bool
    is_active: bool
    status: str
    last_error: str | None
    source: str
    manager: ConnectionManager = field(repr=False, compare=False)

    @property
    def model(self) -> str:
        """What the gateway calls it: the connection's (or the pool's) name."""
        return self.name

    @classmethod
    def from_api(cls, data: dict[str, Any], manager: ConnectionManager, source: str) -> Connection:
        return cls(
            id=str(data["id"]),
            name=data["name"],
            kind="connection",
            connection_type=data.get("connection_type"),
            model_name=data.get("model_name"),
            description=data.get("description") or "",
            temperature=data.get("temperature"),
            max_tokens=data.get("max_tokens"),
            timeout=data.get("timeout"),
            tags=list(data.get("tags") or []),
            use_in_livekit=bool(data.get("use_in_livekit")),
            use_in_mcp=bool(data.get("use_in_mcp")),
            use_in_automation=bool(data.get("use_in_automation")),
            is_active=bool(data.get("is_active")),
            status=data.get("status") or "unknown",
            last_error=data.get("last_error"),
            source=source,
            manager=manager,
        )

    @classmethod
    def from_pool(cls, data: dict[str, Any], manager: ConnectionManager, source: str) -> Connection:
        """A pool has no flags of its own: the gateway serves a call from the members that are
        active and enabled for the call's source."""
        members = ", ".join(m["connection_name"] for m in data.get("members") or [])
        return cls(
            id=str(data["id"]),
            name=data["name"],
            kind="pool",
            connection_type=None,
            model_name=f"pool ({data.get('strategy')}): {members}" if members else None,
            description=data.get("description") or "",
            temperature=None,
            max_tokens=None,
            timeout=None,
            tags=[],
            use_in_livekit=True,
            use_in_mcp=True,
            use_in_automation=True,
            is_active=True,
            status="active",
            last_error=None,
            source=source,
            manager=manager,
        )

    async def generate(
        self,
        prompt: str | None = None,
        *,
        system: str | None = None,
        messages: Sequence[Message] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> LLMResponse:
        """One completion. ``prompt`` is appended as the user's turn after ``messages``;
        ``system`` goes first. Unset ``max_tokens``/``temperature`` take the connection's."""
        body = self._body(prompt, system, messages, max_tokens, temperature)
        if tools:
            body["tools"] = list(tools)
        client = self.manager.gateway()
        started = time.perf_counter()
        with self.manager.translated_errors(self):
            completion: ChatCompletion = await client.chat.completions.create(
                **body, extra_headers=self._source_header()
            )
        latency_ms = (time.perf_counter() - started) * 1000
        return self._response(completion, latency_ms)

    async def stream(
        self,
        prompt: str | None = None,
        *,
        system: str | None = None,
        messages: Sequence[Message] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> AsyncGenerator[str, None]:
        """The answer's text as it arrives, chunk by chunk."""
        body = self._body(prompt, system, messages, max_tokens, temperature)
        client = self.manager.gateway()
        with self.manager.translated_errors(self):
            chunks = await client.chat.completions.create(
                **body, stream=True, extra_headers=self._source_header()
            )
            async with chunks:
                async for chunk in chunks:
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content

    async def test(self, *, prompt: str | None = None, max_tokens: int | None = None) -> Any:
        """Run the server's connection test (recorded in its health history); the JSON of
        ``POST /api/connections/{id}/test``: success, latency_ms, ttft_ms, response_preview,
        or error_kind and error."""
        if self.kind == "pool":
            raise UMPError(f"{self.name} is a pool: test its members one by one")
        return await self.manager.test_connection(self.id, prompt=prompt, max_tokens=max_tokens)

    def create_llm_instance(self, **overrides: Any) -> GatewayLLM:
        """A LiveKit Agents LLM calling the gateway as this connection (source ``livekit``);
        see ``ump_llm_connections.sdk.livekit``."""
        from ump_llm_connections.sdk.livekit import create_llm_instance

        return create_llm_instance(self, **overrides)

    def _source_header(self) -> dict[str, str]:
        """``X-UMP-Source`` for an integration; none for ``api``, so that a token bound to
        sources picks the call's source itself."""
        return {} if self.source == "api" else {"X-UMP-Source": self.source}

    def _body(
        self,
        prompt: str | None,
        system: str | None,
        messages: Sequence[Message] | None,
        max_tokens: int | None,
        temperature: float | None,
    ) -> dict[str, Any]:
        if prompt is None and not messages:
            raise ValueError("generate() needs a prompt or messages")
        turns: list[Message] = []
        if system is not None:
            turns.append({"role": "system", "content": system})
        turns.extend(messages or ())
        if prompt is not None:
            turns.append({"role": "user", "content": prompt})
        body: dict[str, Any] = {"model": self.model, "messages": turns}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        return body

    def _response(self, completion: ChatCompletion, latency_ms: float) -> LLMResponse:
        choice = completion.choices[0] if completion.choices else None
        message = choice.message if choice else None
        calls = []
        for call in (message.tool_calls if message else None) or []:
            function = getattr(call, "function", None)
            if function is None:
                continue
            raw = function.arguments or ""
            try:
                parsed = json.loads(raw) if raw else {}
            except ValueError:
                parsed = {}
            calls.append(
                ToolCall(
                    id=call.id,
                    name=function.name,
                    arguments=parsed if isinstance(parsed, dict) else {},
                    raw_arguments=raw,
                )
            )
        usage = completion.usage
        return LLMResponse(
            text=(message.content if message else None) or "",
            tool_calls=calls,
            usage=Usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
            if usage
            else None,
            latency_ms=latency_ms,
            connection=self,
            model=completion.model,
            finish_reason=choice.finish_reason if choice else None,
        )
