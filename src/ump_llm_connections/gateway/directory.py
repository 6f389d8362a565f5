"""The gateway's in-memory view of the connections, so no request reads the database.

Writes through this process's registry refresh the changed connection at once; a cheap version
check (row count and latest ``updated_at``) every few seconds picks up writes made elsewhere —
the CLI, or another replica — and reloads.

It reads the registry and the pool service through two Protocols (``ConnectionSource``,
``PoolSource``): the gateway layer imports no service.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from ump_llm_connections.background import periodic
from ump_llm_connections.domain import ConnectionRead, PoolList, Source, name_key
from ump_llm_connections.errors import ConfigurationError, NotFound
from ump_llm_connections.gateway.router import Member, PoolRoute
from ump_llm_connections.providers import adapter_for
from ump_llm_connections.providers.base import Adapter
from ump_llm_connections.providers.target import Target
from ump_llm_connections.providers.types import Prices, Usage

log = logging.getLogger(__name__)

SOURCES = frozenset(s for s in Source if s.flag)  # the ones a connection must be enabled for


@dataclass(frozen=True, slots=True)
class Route:
    """One connection as the gateway serves it."""

    id: uuid.UUID
    name: str
    connection_type: str
    is_active: bool
    status: str
    uses: frozenset[str]  # the integrations it is enabled for
    temperature: float | None
    max_tokens: int | None
    prices: Prices
    monthly_budget: float | None
    rpm_limit: int | None
    tpm_limit: int | None
    adapter: Adapter
    owner: str | None = None
    team: str | None = None

    def allows(self, source: str) -> bool:
        """Direct API callers may use any connection; integrations only those enabled for them."""
        return source not in SOURCES or source in self.uses

    def cost(self, usage: Usage) -> float | None:
        return usage.cost(self.prices)


class ConnectionSource(Protocol):
    """Where the directory reads connections (the registry), and hears of changes to them."""

    def subscribe(self, listener: Callable[[uuid.UUID], Awaitable[None]]) -> None: ...
    async def version(self) -> tuple[int, object]: ...
    async def everything(self) -> list[tuple[ConnectionRead, Target]]: ...
    async def target(self, ref: str) -> tuple[ConnectionRead, Target]: ...


class PoolSource(Protocol):
    """Where the directory reads pools (the pool service), and hears of changes to them."""

    def subscribe(self, listener: Callable[[], Awaitable[None]]) -> None: ...
    async def find(self) -> PoolList: ...


AdapterFactory = Callable[[Target, aiohttp.ClientSession], Adapter]


class Directory:
    def __init__(
        self,
        registry: ConnectionSource,
        pools: PoolSource,
        http: aiohttp.ClientSession,
        *,
        refresh_s: float = 5.0,
        adapters: AdapterFactory = adapter_for,
    ) -> None:
        self._registry = registry
        self._pool_service = pools
        self._http = http
        self._adapters = adapters  # tests build the routes on providers.fake
        self._by_key: dict[str, Route] = {}
        self._pools: dict[str, PoolRoute] = {}
        self._version: tuple[int, object] | None = None
        self._watcher = periodic(
            "gateway directory refresh",
            self._reload_if_changed,
            refresh_s,
            expected=(OSError, ConfigurationError),  # keep serving the last good view
        )
        self._lock = asyncio.Lock()  # a slow full reload must not undo a newer refresh
        registry.subscribe(self.refresh)
        pools.subscribe(self.load_pools)

    def find(self, model: str) -> Route | None:
        """A connection by id or by name, as ``name_key`` folds it (a name is never a UUID, and
        an id's text is its own key, so the two never collide)."""
        return self._by_key.get(name_key(model))

    def find_pool(self, model: str) -> PoolRoute | None:
        return self._pools.get(name_key(model))

    def get(self, connection_id: uuid.UUID) -> Route | None:
        return self._by_key.get(str(connection_id))

    def pools(self) -> list[PoolRoute]:
        return sorted({p.id: p for p in self._pools.values()}.values(), key=lambda p: p.name)

    async def load_pools(self) -> None:
        table: dict[str, PoolRoute] = {}
        for pool in (await self._pool_service.find()).items:
            route = PoolRoute(
                id=pool.id,
                name=pool.name,
                strategy=pool.strategy,
                members=tuple(Member(m.connection_id, m.priority, m.weight) for m in pool.members),
                owner=pool.owner,
                team=pool.team,
            )
            table[str(pool.id)] = table[name_key(pool.name)] = route
        self._pools = table

    def routes(self) -> list[Route]:
        return sorted({r.id: r for r in self._by_key.values()}.values(), key=lambda r: r.name)

    async def load(self) -> None:
        async with self._lock:
            version = await self._registry.version()
            entries = await self._registry.everything()
            table: dict[str, Route] = {}
            for connection, target in entries:
                route = self._route(connection, target)
                table[str(route.id)] = table[name_key(route.name)] = route
            self._by_key, self._version = table, version
        log.debug("gateway directory loaded: %d connections", len(entries))

    async def refresh(self, connection_id: uuid.UUID) -> None:
        """Reload one connection after this process changed it."""
        async with self._lock:
            try:
                connection, target = await self._registry.target(str(connection_id))
            except (NotFound, ConfigurationError):  # gone, or its key cannot be read
                connection = None
            # In place, and only this connection's two keys: a copy of the whole table per change
            # made every probe's status change cost O(connections) (no await in between).
            table = self._by_key
            old = table.pop(str(connection_id), None)
            named = table.get(name_key(old.name)) if old is not None else None
            if old is not None and named is not None and named.id == connection_id:
                del table[name_key(old.name)]
            if connection is not None:
                route = self._route(connection, target)
                table[str(route.id)] = table[name_key(route.name)] = route
            self._version = await self._registry.version()

    async def start(self) -> None:
        await self.load()
        await self.load_pools()
        self._watcher.start()

    async def stop(self) -> None:
        await self._watcher.stop()

    async def _reload_if_changed(self) -> None:
        if await self._registry.version() != self._version:
            await self.load()
        await self.load_pools()  # few rows: cheaper than tracking their versions

    def _route(self, c: ConnectionRead, target: Target) -> Route:
        return Route(
            id=c.id,
            name=c.name,
            connection_type=c.connection_type.value,
            is_active=c.is_active,
            status=c.status.value,
            uses=frozenset(s for s in Source if s.flag and getattr(c, s.flag)),
            temperature=c.temperature,
            max_tokens=c.max_tokens,
            prices=Prices(
                input=c.input_cost_per_million,
                output=c.output_cost_per_million,
                cache_read=c.cache_read_cost_per_million,
                cache_write=c.cache_write_cost_per_million,
            ),
            monthly_budget=c.monthly_budget,
            rpm_limit=c.rpm_limit,
            tpm_limit=c.tpm_limit,
            adapter=self._adapters(target, self._http),
            owner=c.owner,
            team=c.team,
        )
