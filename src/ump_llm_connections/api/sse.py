"""Server-sent events for ``/v1`` streams: stopped when the client leaves, ended on shutdown.

Starlette's ``StreamingResponse`` notices a disconnect, but stops the body through an anyio
cancel scope that only reaches a task waiting on a future still pending: a stream whose upstream
never pauses always has its next read ready, so it ran on for seconds, or until the upstream
ended. Here a watcher cancels the stream's task outright (asyncio's cancel always lands), and:

- the client left (``http.disconnect``): the upstream read is cancelled and its connection
  closed; the gateway records the call as ``client_closed``.
- any other cancellation is the server stopping (uvicorn's graceful shutdown ran out, or the
  app's shutdown ended the streams still open): the stream ends with an error event, not a cut.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from starlette.types import Receive, Scope, Send

from ump_llm_connections.gateway.core import CLIENT_CLOSED, SERVER_SHUTDOWN
from ump_llm_connections.gateway.wire import error_json

SHUTDOWN_EVENT = (
    b"data: "
    + error_json("the server is shutting down: retry the request", "server_error", SERVER_SHUTDOWN)
    + b"\n\n"
)


class OpenStreams:
    """The streams in flight, so that a stopping server can end them."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[object]] = set()
        self.ending: set[asyncio.Task[object]] = set()  # sending their last event: not again

    async def close(self, grace_s: float) -> None:
        """End every open stream with the shutdown event; wait up to ``grace_s`` for them."""
        tasks = [task for task in self.tasks if not task.done()]
        for task in tasks:
            if not task.cancelling() and task not in self.ending:
                task.cancel(SERVER_SHUTDOWN)
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)


class EventStream:
    """An ASGI ``text/event-stream`` response over an iterator of ready-made events."""

    def __init__(
        self, events: AsyncGenerator[bytes, None], headers: dict[str, str], streams: OpenStreams
    ) -> None:
        self.events = events
        self.headers = [(b"content-type", b"text/event-stream")] + [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]
        self.streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.create_task(_watch(receive, task))
        self.streams.tasks.add(task)
        started = False
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.headers})
            started = True
            async for event in self.events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError as exc:
            task.uncancel()
            await end_with(self.events, exc)  # recorded now, for its reason, before any slow send
            if exc.args == (CLIENT_CLOSED,):
                return  # nobody to tell
            self.streams.ending.add(task)  # a slow reader may take a while to take it
            if not started:
                await send({"type": "http.response.start", "status": 200, "headers": self.headers})
            await send({"type": "http.response.body", "body": SHUTDOWN_EVENT, "more_body": False})
        finally:
            watcher.cancel()
            self.streams.tasks.discard(task)
            self.streams.ending.discard(task)
            await self.events.aclose()  # a no-op unless sending failed: then it closes upstream


async def end_with(events: AsyncGenerator[Any, None], cancel: asyncio.CancelledError) -> None:
    """Close ``events`` with the cancellation that stopped the stream, so the generators under
    it learn why (the client left, or the server is stopping). The cancel may have landed in
    ``send`` rather than in them: a plain close would then look like the client leaving."""
    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
        await events.athrow(cancel)


async def _watch(receive: Receive, task: asyncio.Task[object]) -> None:
    """Cancel ``task`` when its client goes away."""
    while (await receive())["type"] != "http.disconnect":
        pass
    task.cancel(CLIENT_CLOSED)
