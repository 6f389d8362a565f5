"""Dependency aliases for the routes, and the strict query parameters they share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from pydantic import BeforeValidator

from ump_llm_connections.errors import InvalidInput
from ump_llm_connections.health import ConnectionTester
from ump_llm_connections.pools import PoolService
from ump_llm_connections.registry import Registry

MAX_OFFSET = 1_000_000_000
MAX_QUERY_ITEMS = 100


async def _registry(request: Request) -> Registry:
    registry: Registry = request.app.state.service.registry
    return registry


async def _tester(request: Request) -> ConnectionTester:
    tester: ConnectionTester = request.app.state.service.tester
    return tester


async def _pools(request: Request) -> PoolService:
    pools: PoolService = request.app.state.service.pools
    return pools


async def clean_request(request: Request) -> None:
    """Refuse what no database can store before a route sees it: a NUL character in the path
    or the query (PostgreSQL rejects it mid-query), and queries of absurd length."""
    items = request.query_params.multi_items()
    if len(items) > MAX_QUERY_ITEMS:
        raise InvalidInput(f"at most {MAX_QUERY_ITEMS} query parameters", field=items[-1][0])
    for name, value in [*request.path_params.items(), *items]:
        if "\x00" in name or "\x00" in value:
            shown = name.replace("\x00", "?")[:64]
            raise InvalidInput(f"{shown} must not contain NUL characters", field=shown)


def _query_bool(value: object) -> object:
    """``true``/``false`` or ``1``/``0``; not ``yes``, ``on`` or ``t`` (FastAPI's lax default)."""
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise ValueError("must be true or false (or 1 or 0)")
    return value


RegistryDep = Annotated[Registry, Depends(_registry)]
Pools = Annotated[PoolService, Depends(_pools)]
TesterDep = Annotated[ConnectionTester, Depends(_tester)]
Clean = Depends(clean_request)
QueryBool = Annotated[bool | None, BeforeValidator(_query_bool)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip")]
