"""Dependency aliases for the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ump_llm_connections.health import ConnectionTester
from ump_llm_connections.pools import PoolService
from ump_llm_connections.registry import Registry


def _registry(request: Request) -> Registry:
    registry: Registry = request.app.state.service.registry
    return registry


def _tester(request: Request) -> ConnectionTester:
    tester: ConnectionTester = request.app.state.service.tester
    return tester


def _pools(request: Request) -> PoolService:
    pools: PoolService = request.app.state.service.pools
    return pools


RegistryDep = Annotated[Registry, Depends(_registry)]
Pools = Annotated[PoolService, Depends(_pools)]
TesterDep = Annotated[ConnectionTester, Depends(_tester)]
