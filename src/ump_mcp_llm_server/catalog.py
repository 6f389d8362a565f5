"""What one caller may query: the MCP-enabled connections and the pools, as tools.

A ``Catalog`` belongs to one token (the stdio server has one; the HTTP server one per bearer
token it is called with, so a member sees only its team's tools). It lists the connections and
pools through the SDK, names them (``slugs.py``), and follows the registry: each connection or
pool event of ``GET /api/events`` re-lists them, and so does a timer (``UMP_MCP_REFRESH_S``),
faster while the main server does not answer. When the tools changed, the sessions that listed
them hear ``notifications/tools/list_changed``: on their standalone channel for clients of the
handshake era, on their ``subscriptions/listen`` stream for those of 2026-07-28.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import mcp_types as types
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged

from ump_llm_connections import Connection, ConnectionManager, UMPError, Unauthorized
from ump_mcp_llm_server.slugs import SlugTable
from ump_mcp_llm_server.tools import STATIC_TOOLS, query_tool

__all__ = ["MAX_SESSIONS", "WATCHED_EVENTS", "Catalog", "Catalogs"]

log = logging.getLogger(__name__)

WATCHED_EVENTS = frozenset(
    {
        "stream.opened",  # the SDK's: a (re)connection, events may have been missed
        "connection.created",
        "connection.updated",
        "connection.deleted",
        "connection.activated",
        "connection.deactivated",
        "connection.status_changed",
        "pool.created",
        "pool.updated",
        "pool.deleted",
    }
)
MAX_SESSIONS = 1024  # handshake-era sessions remembered per catalog, the oldest forgotten
RETRY_MIN_S = 0.5  # while the server does not answer, re-list after this, doubling


class Catalog:
    def __init__(self, manager: ConnectionManager, *, refresh_s: float) -> None:
        self.manager = manager
        self.refresh_s = refresh_s
        self._table = SlugTable()
        self._by_tool: dict[str, Connection] = {}
        self._tools: list[types.Tool] = []
        self._loaded = False
        self._lock = anyio.Lock()
        self._sessions: OrderedDict[str, ServerSession] = OrderedDict()
        self._bus = InMemorySubscriptionBus()
        self.listen = ListenHandler(self._bus)
        self.failing = False

    @property
    def entries(self) -> list[tuple[str, Connection]]:
        """Each tool name and its connection or pool, as last listed."""
        return list(self._by_tool.items())

    async def tools(self) -> list[types.Tool]:
        """The tools; the first call lists them (a failure leaves the two fixed tools only,
        whose calls then give the reason)."""
        if not self._loaded:
            try:
                await self.refresh()
            except UMPError as exc:
                log.warning("cannot list the connections: %s", exc.message)
        return [*STATIC_TOOLS, *self._tools]

    async def find(self, tool: str) -> Connection | None:
        """The connection or pool behind a tool name; an unknown name re-lists once (a tool
        made since the last listing)."""
        if tool not in self._by_tool:
            await self.refresh()
        return self._by_tool.get(tool)

    async def refresh(self) -> bool:
        """List again; tell the sessions when the tools changed. Raises the SDK's errors."""
        async with self._lock:
            connections = await self.manager.get_connections(use_in_mcp=True, is_active=True)
            pools = await self.manager.get_pools(source="mcp")
            entries = [*connections, *pools]
            names = self._table.update([(entry.id, entry.name) for entry in entries])
            by_id = {entry.id: entry for entry in entries}
            self._by_tool = {tool: by_id[entry_id] for tool, entry_id in names.items()}
            tools = [query_tool(tool, entry) for tool, entry in self._by_tool.items()]
            changed = self._loaded and tools != self._tools
            self._tools, self._loaded = tools, True
        if changed:
            await self._announce()
        return changed

    def remember(self, key: str, session: ServerSession) -> None:
        """A handshake-era session (``key``: its MCP session id, or ``stdio``) to notify."""
        self._sessions.pop(key, None)
        self._sessions[key] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)

    async def _announce(self) -> None:
        log.info("the tools changed (%d connections and pools)", len(self._tools))
        for session in list(self._sessions.values()):
            try:
                await session.send_tool_list_changed()
            except Exception as exc:  # a session that went away must not stop the others
                log.debug("could not notify a session: %s", type(exc).__name__)
        await self._bus.publish(ToolsListChanged())

    async def follow(self) -> None:
        """Re-list on registry events and on a timer, until cancelled or the token is refused."""
        async with anyio.create_task_group() as tasks:

            async def until_refused(job: Callable[[], Awaitable[None]]) -> None:
                try:
                    await job()
                except Unauthorized as exc:
                    log.warning("a token was refused, its tools are forgotten: %s", exc.message)
                    tasks.cancel_scope.cancel()

            tasks.start_soon(until_refused, self._events)
            tasks.start_soon(until_refused, self._poll)

    async def _events(self) -> None:
        while True:
            try:
                async for event in self.manager.events():
                    if event.get("type") in WATCHED_EVENTS:
                        await self._refresh_logged()
            except Unauthorized:
                raise
            except UMPError as exc:  # e.g. a server without the events route: the timer works
                log.debug("no event stream (%s); re-listing every %g s", exc, self.refresh_s)
                await anyio.sleep(self.refresh_s)

    async def _poll(self) -> None:
        delay = RETRY_MIN_S
        while True:
            await anyio.sleep(delay if self.failing else self.refresh_s)
            await self._refresh_logged()
            delay = min(delay * 2, self.refresh_s) if self.failing else RETRY_MIN_S

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except Unauthorized:
            raise
        except UMPError as exc:
            if not self.failing:
                log.warning("cannot list the connections (will retry): %s", exc.message)
            self.failing = True
            return
        if self.failing:
            log.info("listing the connections works again")
        self.failing = False


class Catalogs:
    """One catalog per token, each following the registry while the server runs."""

    def __init__(self, api_url: str | None, token: str | None, *, refresh_s: float) -> None:
        self.api_url = api_url
        self.token = token or ""
        self.refresh_s = refresh_s
        self._catalogs: dict[str, Catalog] = {}
        self._tasks: anyio.abc.TaskGroup | None = None

    @asynccontextmanager
    async def running(self, *_: Any) -> AsyncIterator[Catalogs]:
        """Run the catalogs' followers (a ``Server`` lifespan: it passes the server)."""
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            try:
                yield self
            finally:
                self._tasks = None
                tasks.cancel_scope.cancel()
                for catalog in self._catalogs.values():
                    await catalog.manager.aclose()
                self._catalogs.clear()

    def get(self, token: str | None) -> Catalog:
        """The catalog of a caller's token (None: the server's own, ``UMP_API_TOKEN``)."""
        key = token or self.token
        catalog = self._catalogs.get(key)
        if catalog is None:
            # "" is no token at all: the manager must not fall back to its environment's
            manager = ConnectionManager(self.api_url, key)
            catalog = Catalog(manager, refresh_s=self.refresh_s)
            self._catalogs[key] = catalog
            if self._tasks is not None:
                self._tasks.start_soon(self._follow, key, catalog)
        return catalog

    async def _follow(self, key: str, catalog: Catalog) -> None:
        try:
            await catalog.follow()
        except Exception:
            log.exception("following the registry failed")
        if self._catalogs.get(key) is catalog:
            del self._catalogs[key]
            await catalog.manager.aclose()
