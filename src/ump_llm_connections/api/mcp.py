"""``/mcp``: the MCP server (``ump_mcp_llm_server``) over streamable HTTP, inside this server.

It sits behind the same guards as every route (Host, origin, body, and the auth middleware:
without a valid token, once tokens exist, ``/mcp`` answers 401). It is a client of this server
like any other: its SDK calls ``http://127.0.0.1:<port>/api`` and ``/v1`` with the caller's own
bearer token, so a member's tools are the connections its team may see.

``mcp`` costs about 2 s to import, so nothing of it is loaded before the first ``/mcp`` request;
that request starts the session manager (its task group), and the app's shutdown stops it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ump_llm_connections.config import Settings, bind_address, is_loopback

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

__all__ = ["PATH", "McpEndpoint", "mount", "own_api_url"]

PATH = "/mcp"
REFRESH_S_ENV = "UMP_MCP_REFRESH_S"
DEFAULT_REFRESH_S = 30.0


def own_api_url(settings: Settings) -> str:
    """This server's REST API as its own clients reach it: loopback when it listens there
    (or on every address), else the address it is bound to."""
    host = bind_address(settings.host)
    if host in ("", "0.0.0.0") or (is_loopback(host) and ":" not in host):
        host = "127.0.0.1"
    elif host == "::" or is_loopback(host):
        host = "[::1]"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/api"


class McpEndpoint:
    """The ASGI app at ``/mcp``: starts the MCP session manager on first use."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self._handler: ASGIApp | None = None
        self._starting = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._handler or await self._start()
        await handler(scope, receive, send)

    async def _start(self) -> ASGIApp:
        async with self._starting:
            if self._handler is None:
                from ump_mcp_llm_server.catalog import Catalogs
                from ump_mcp_llm_server.server import http_session_manager

                refresh_s = float(os.environ.get(REFRESH_S_ENV) or DEFAULT_REFRESH_S)
                catalogs = Catalogs(self.api_url, None, refresh_s=refresh_s)
                manager = http_session_manager(catalogs, security=None)  # the guard checks Host
                started = asyncio.Event()
                self._task = asyncio.create_task(self._run(manager, started))
                await started.wait()
                self._handler = manager.handle_request
            return self._handler

    async def _run(self, manager: StreamableHTTPSessionManager, started: asyncio.Event) -> None:
        async with manager.run():
            started.set()
            await self._stop.wait()

    async def close(self) -> None:
        """Stop the session manager (its sessions end), if a request started it."""
        self._stop.set()
        if self._task is not None:
            await self._task


def mount(app: FastAPI, settings: Settings) -> None:
    """Serve ``/mcp`` and stop it when the app's lifespan ends."""
    endpoint = McpEndpoint(own_api_url(settings))
    app.router.routes.append(Route(PATH, endpoint, include_in_schema=False))  # any method
    app.router.lifespan_context = _closing(app.router.lifespan_context, endpoint)


def _closing(
    lifespan: Callable[[Any], AbstractAsyncContextManager[Any]], endpoint: McpEndpoint
) -> Callable[[Any], AbstractAsyncContextManager[Any]]:
    @asynccontextmanager
    async def closing(app: Any) -> AsyncIterator[Any]:
        async with lifespan(app) as state:
            try:
                yield state
            finally:
                await endpoint.close()

    return closing
