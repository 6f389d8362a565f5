"""The SDK for code that is not async: scripts, notebooks, a REPL.

    from ump_llm_connections.sync import get_connection

    connection = get_connection("Local Ollama")
    print(connection.generate(prompt="Hello").text)
    for chunk in connection.stream(prompt="Tell me a story"):
        print(chunk, end="")

The calls run on an event loop of their own in a background thread, so this also works where
a loop is already running (Jupyter) and ``asyncio.run`` would refuse.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Coroutine, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ump_llm_connections.sdk import default_manager
from ump_llm_connections.sdk.connection import Connection, LLMResponse, Message

if TYPE_CHECKING:
    import asyncio

    from ump_llm_connections.sdk.manager import ConnectionManager as AsyncConnectionManager

__all__ = ["ConnectionManager", "SyncConnection", "get_connection", "get_connections"]

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def _run(call: Coroutine[Any, Any, T]) -> T:
    """Run ``call`` on the background loop (started on first use) and wait for its result."""
    import asyncio

    global _loop  # one background loop per process
    with _lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="ump-sdk-loop", daemon=True).start()
    return asyncio.run_coroutine_threadsafe(call, _loop).result()


async def _await(value: Awaitable[T]) -> T:
    return await value


class SyncConnection:
    """A ``Connection`` whose calls block. Its fields read through (``.name``, ``.model_name``,
    ``.temperature``, ...); ``.connection`` is the async one."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)

    def __repr__(self) -> str:
        return f"SyncConnection({self.connection!r})"

    def generate(
        self,
        prompt: str | None = None,
        *,
        system: str | None = None,
        messages: Sequence[Message] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> LLMResponse:
        return _run(
            self.connection.generate(
                prompt,
                system=system,
                messages=messages,
                max_tokens=max_tokens,
                temperature=temperature,
                tools=tools,
            )
        )

    def stream(
        self,
        prompt: str | None = None,
        *,
        system: str | None = None,
        messages: Sequence[Message] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Iterator[str]:
        chunks = self.connection.stream(
            prompt, system=system, messages=messages, max_tokens=max_tokens, temperature=temperature
        )
        try:
            while True:
                try:
                    yield _run(_await(anext(chunks)))
                except StopAsyncIteration:
                    return
        finally:
            _run(chunks.aclose())

    def test(self, *, prompt: str | None = None, max_tokens: int | None = None) -> Any:
        return _run(self.connection.test(prompt=prompt, max_tokens=max_tokens))


class ConnectionManager:
    """The async ``ConnectionManager``'s lookups, blocking; same arguments."""

    def __init__(
        self, api_url: str | None = None, token: str | None = None, *, timeout: float = 120.0
    ) -> None:
        from ump_llm_connections.sdk.manager import ConnectionManager as Async

        self.manager: AsyncConnectionManager = Async(api_url, token, timeout=timeout)

    def get_connection(self, name_or_id: str | None = None, **filters: Any) -> SyncConnection:
        return SyncConnection(_run(self.manager.get_connection(name_or_id, **filters)))

    def get_connections(self, **filters: Any) -> list[SyncConnection]:
        return [SyncConnection(c) for c in _run(self.manager.get_connections(**filters))]

    def get_pools(self) -> list[SyncConnection]:
        return [SyncConnection(c) for c in _run(self.manager.get_pools())]

    def test_connection(self, name_or_id: str, **options: Any) -> Any:
        return _run(self.manager.test_connection(name_or_id, **options))

    def close(self) -> None:
        _run(self.manager.aclose())


def get_connection(
    name_or_id: str | None = None,
    *,
    name: str | None = None,
    use_in_livekit: bool | None = None,
    use_in_mcp: bool | None = None,
    use_in_automation: bool | None = None,
) -> SyncConnection:
    return SyncConnection(
        _run(
            default_manager().get_connection(
                name_or_id,
                name=name,
                use_in_livekit=use_in_livekit,
                use_in_mcp=use_in_mcp,
                use_in_automation=use_in_automation,
            )
        )
    )


def get_connections(
    *,
    use_in_livekit: bool | None = None,
    use_in_mcp: bool | None = None,
    use_in_automation: bool | None = None,
    connection_type: str | None = None,
    tags: Iterable[str] | None = None,
    is_active: bool | None = None,
) -> list[SyncConnection]:
    found = _run(
        default_manager().get_connections(
            use_in_livekit=use_in_livekit,
            use_in_mcp=use_in_mcp,
            use_in_automation=use_in_automation,
            connection_type=connection_type,
            tags=tags,
            is_active=is_active,
        )
    )
    return [SyncConnection(c) for c in found]
