"""The wire-neutral types every adapter speaks: a request, its answer, the chunks of a stream
and the token counts (``Usage``), with the prices that turn counts into a cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI carries it

    def arguments_object(self) -> Any:
        """The arguments parsed, for formats that carry an object (Anthropic, Gemini, Ollama).
        A caller's half-written arguments (which ``gateway/wire.py`` lets through for the
        OpenAI format) become ``{}`` here: see ``providers/README.md``."""
        try:
            return orjson.loads(self.arguments) if self.arguments else {}
        except orjson.JSONDecodeError:
            return {}


@dataclass(slots=True)
class Message:
    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)  # assistant messages
    tool_call_id: str | None = None  # tool messages: the call this answers
    name: str | None = None  # tool messages: the tool's name (Gemini and Ollama need it)


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(slots=True)
class ChatRequest:
    messages: list[Message]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    tools: list[Tool] | None = None
    tool_choice: str | None = None  # "auto", "none", "required" or a tool's name
    response_format: dict[str, Any] | None = None  # OpenAI's: {"type": "json_object"} …

    def system_prompt(self) -> str | None:
        """``system`` and any system-role messages, joined (formats with one system field)."""
        parts = [self.system] if self.system else []
        parts += [m.content for m in self.messages if m.role == "system" and m.content]
        return "\n\n".join(parts) if parts else None

    def conversation(self) -> list[Message]:
        """The messages without the system ones."""
        return [m for m in self.messages if m.role != "system"]

    def json_schema(self) -> dict[str, Any] | None:
        """The JSON schema asked for by ``response_format``, if any."""
        if self.response_format and self.response_format.get("type") == "json_schema":
            schema = (self.response_format.get("json_schema") or {}).get("schema")
            return schema if isinstance(schema, dict) else None
        return None

    def wants_json(self) -> bool:
        kind = (self.response_format or {}).get("type")
        return kind in ("json_object", "json_schema")


@dataclass(slots=True)
class Usage:
    """Token counts of one answer as the upstream reported them; None where it reported none.

    ``input_tokens`` is the whole prompt, cached parts included: ``cache_read_tokens`` of it
    were read from the provider's prompt cache and ``cache_write_tokens`` written to it.
    ``output_tokens`` is the whole answer, ``reasoning_tokens`` of it thinking (as OpenAI
    counts). ``details`` holds the upstream's other counts under its own names. Each adapter
    fills this in one function of its own (``_usage``).
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    details: dict[str, int] = field(default_factory=dict)

    @property
    def reported(self) -> bool:
        return self.input_tokens is not None or self.output_tokens is not None

    @property
    def total_tokens(self) -> int | None:
        if not self.reported:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)

    def cost(self, prices: Prices) -> float | None:
        """What these tokens cost at ``prices`` (per million); None without a price or counts."""
        if not self.reported or (prices.input is None and prices.output is None):
            return None
        cache_read = prices.input if prices.cache_read is None else prices.cache_read
        cache_write = prices.input if prices.cache_write is None else prices.cache_write
        cached = self.cache_read_tokens + self.cache_write_tokens
        uncached = max(0, (self.input_tokens or 0) - cached)
        total = (
            uncached * (prices.input or 0.0)
            + self.cache_read_tokens * (cache_read or 0.0)
            + self.cache_write_tokens * (cache_write or 0.0)
            + (self.output_tokens or 0) * (prices.output or 0.0)
        )
        return total / 1_000_000


@dataclass(frozen=True, slots=True)
class Prices:
    """A connection's prices per million tokens; cache reads and writes default to ``input``."""

    input: float | None = None
    output: float | None = None
    cache_read: float | None = None
    cache_write: float | None = None


def counts(raw: Any, prefix: str = "") -> dict[str, int]:
    """The integer counts of an upstream's usage object by name, nested ones as
    ``outer.inner``; an adapter's ``_usage`` takes out those it maps to a part."""
    found: dict[str, int] = {}
    if not isinstance(raw, dict):
        return found
    for key, value in raw.items():
        name = prefix + str(key)
        if isinstance(value, int) and not isinstance(value, bool):
            found[name] = value
        elif isinstance(value, dict):
            found.update(counts(value, name + "."))
    return found


def uncached_prompt_usage(
    found: dict[str, int], *, fresh: str, read: str, write: str, output: str
) -> Usage:
    """The usage of a format whose prompt count (``fresh``) leaves the cache's reads and writes
    out (Anthropic, Bedrock): the prompt is all three. Its other counts go to ``details``."""
    rest = dict(found)
    prompt = rest.pop(fresh, None)
    cache_read = rest.pop(read, 0)
    cache_write = rest.pop(write, 0)
    return Usage(
        input_tokens=None if prompt is None else prompt + cache_read + cache_write,
        output_tokens=rest.pop(output, None),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        details=rest,
    )


@dataclass(slots=True)
class ChatResponse:
    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None  # "stop", "length", "tool_calls", "content_filter"
    usage: Usage = field(default_factory=Usage)
    model: str | None = None


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class StreamChunk:
    text: str = ""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
