"""uvicorn's server with a bounded, two-step stop.

SIGTERM or SIGINT starts a graceful shutdown: the app is told first (``stopping``: its event
streams end at once), then no new connections, calls in flight may finish within
``timeout_graceful_shutdown``; streams still open then end with an error event. A second
signal of either kind stops at once (uvicorn itself only honours a second SIGINT); the app's
shutdown is skipped then, so the app is told to keep what must not be lost (buffered usage).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from types import FrameType

import uvicorn


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
