"""uvicorn's server with a bounded, two-step stop.

SIGTERM or SIGINT starts a graceful shutdown: the app is told first (``stopping``: its event
streams end at once), then no new connections, calls in flight may finish within
``timeout_graceful_shutdown``; streams still open then end with an error event. A second
signal of either kind stops at once (uvicorn itself only honours a second SIGINT); the app's
shutdown is skipped then, so the app is told to keep what must not be lost (buffered usage).
After the app's shutdown, the process waits (up to ``FLUSH_S``) for its connections to close:
the last event of a stream the stop ended must reach a slow reader, not die in a buffer.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from types import FrameType

import uvicorn

FLUSH_S = 5.0


class Server(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        abandon: Callable[[], Awaitable[None]],
        stopping: Callable[[], None],
    ) -> None:
        super().__init__(config)
        self._abandon = abandon
        self._stopping = stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            self.force_exit = True
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._stopping()
        await super().shutdown(sockets)
        if self.force_exit:
            await self._abandon()
            return
        deadline = time.monotonic() + FLUSH_S
        while self.server_state.connections and not self.force_exit:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
