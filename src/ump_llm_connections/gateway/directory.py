"""The gateway's in-memory view of the connections, so no request reads the database.

Writes through this process's registry refresh the changed connection at once; a cheap version
check (row count and latest ``updated_at``) every few seconds picks up writes made elsewhere —
the CLI, or another replica — and reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass

import aiohttp

from ump_llm_connections.domain import ConnectionRead, name_key
from ump_llm_connections.errors import ConfigurationError, NotFound
from ump_llm_connections.gateway.router import Member, PoolRoute
from ump_llm_connections.pools import PoolService
from ump_llm_connections.providers import adapter_for
from ump_llm_connections.providers.base import Adapter, Target
from ump_llm_connections.providers.types import Prices, Usage
from ump_llm_connections.registry import Registry

log = logging.getLogger(__name__)

SOURCES = ("livekit", "mcp", "automation")


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

    def allows(self, source: str) -> bool:
        """Direct API callers may use any connection; integrations only those enabled for them."""
        return source not in SOURCES or source in self.uses

    def cost(self, usage: Usage) -> float | None:
        return usage.cost(self.prices)


class Directory:
    def __init__(
        self,
        registry: Registry,
        pools: PoolService,
        http: aiohttp.ClientSession,
        *,
        refresh_s: float = 5.0,
    ) -> None:
        self._registry = registry
        self._pool_service = pools
        self._http = http
        self._refresh_s = refresh_s
        self._by_key: dict[str, Route] = {}
        self._pools: dict[str, PoolRoute] = {}
        self._version: tuple[int, object] | None = None
        self._task: asyncio.Task[None] | None = None
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
        self._task = asyncio.create_task(self._watch(), name="gateway-directory")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                if await self._registry.version() != self._version:
                    await self.load()
                await self.load_pools()  # few rows: cheaper than tracking their versions
            except (OSError, ConfigurationError) as exc:  # keep serving the last good view
                log.warning("gateway directory refresh failed: %s", exc)
            except Exception:
                log.exception("gateway directory refresh failed")

    def _route(self, c: ConnectionRead, target: Target) -> Route:
        uses = {"livekit": c.use_in_livekit, "mcp": c.use_in_mcp, "automation": c.use_in_automation}
        return Route(
            id=c.id,
            name=c.name,
            connection_type=c.connection_type.value,
            is_active=c.is_active,
            status=c.status.value,
            uses=frozenset(k for k, on in uses.items() if on),
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
            adapter=adapter_for(target, self._http),
        )
