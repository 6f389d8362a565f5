"""A stream turned back into one answer, in one place.

The gateway passes a stream's chunks on as they come and the connection tester reads them for a
preview; both hand each chunk to a ``Collector``, which times the first token, keeps the last
usage the stream reported and joins the text and tool calls into a ``ChatResponse``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from ump_llm_connections.providers.types import ChatResponse, StreamChunk, ToolCall, Usage


class Collector:
    """Folds ``StreamChunk`` s into a ``ChatResponse``; ``keep_chars`` bounds the text kept
    (None: all of it; the gateway, which has passed the text on already, keeps none)."""

    def __init__(
        self, *, keep_chars: int | None = None, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._clock = clock
        self.started = clock()
        self.ttft_ms: float | None = None  # until the first text or tool call
        self.usage = Usage()
        self.chars = 0  # of text seen, kept or not
        self._keep = keep_chars
        self._text: list[str] = []
        self._kept = 0
        self._calls: dict[int, ToolCall] = {}
        self._arguments: dict[int, list[str]] = {}  # each call's argument pieces
        self._finish: str | None = None

    def add(self, chunk: StreamChunk) -> None:
        if self.ttft_ms is None and (chunk.text or chunk.tool_calls):
            self.ttft_ms = self.elapsed_ms()
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.finish_reason:
            self._finish = chunk.finish_reason
        self.chars += len(chunk.text)
        if chunk.text and (self._keep is None or self._kept < self._keep):
            self._text.append(chunk.text)
            self._kept += len(chunk.text)
        for delta in chunk.tool_calls:
            call = self._calls.get(delta.index)
            if call is None:
                call = self._calls[delta.index] = ToolCall(
                    id=f"call_{delta.index}", name="", arguments=""
                )
                self._arguments[delta.index] = []
            call.id = delta.id or call.id
            call.name = delta.name or call.name
            if delta.arguments:  # joined once, in response(): a long call comes in many pieces
                self._arguments[delta.index].append(delta.arguments)

    def elapsed_ms(self) -> float:
        return (self._clock() - self.started) * 1000

    def response(self) -> ChatResponse:
        """The answer so far; its text is at most about ``keep_chars`` long."""
        text = "".join(self._text)
        return ChatResponse(
            text=text if self._keep is None else text[: self._keep],
            tool_calls=[
                replace(self._calls[i], arguments="".join(self._arguments[i]))
                for i in sorted(self._calls)
            ],
            finish_reason=self._finish,
            usage=self.usage,
        )
