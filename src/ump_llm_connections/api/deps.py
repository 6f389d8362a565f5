"""Every route dependency, and the strict query parameters the routes share.

One naming scheme: ``XxxDep = Annotated[Xxx, Depends(_xxx)]``. The dependency functions are
``async`` on purpose: FastAPI runs a sync dependency in a thread, one hop per request. They all
read the server's ``Runtime`` (``runtime.py``), the one attribute of ``app.state``; so does
the gateway's lean router (``api/gateway.py``), through ``runtime_of``. ``Clean`` is the guard
every REST router lists.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from pydantic import BeforeValidator
from starlette.requests import HTTPConnection
from starlette.types import Scope

from ump_llm_connections.audit import Actor, AuditLog
from ump_llm_connections.domain.access import Principal
from ump_llm_connections.errors import Forbidden, InvalidInput, Unauthorized
from ump_llm_connections.health import ConnectionTester
from ump_llm_connections.pools import PoolService
from ump_llm_connections.registry import Registry
from ump_llm_connections.reports import UsageReports
from ump_llm_connections.runtime import Runtime
from ump_llm_connections.tokens import TokenService
from ump_llm_connections.webhooks import WebhookService

MAX_OFFSET = 1_000_000_000
MAX_QUERY_ITEMS = 250  # the most any route takes: 200 ids of /api/connections/activity


PRINCIPAL = "ump.principal"  # scope keys the auth middleware (api/auth.py) sets
CLIENT = "ump.client"


def principal_of(scope: Scope) -> Principal:
    """Who is calling, as the auth middleware found; a request it did not see is refused."""
    principal: Principal | None = scope.get(PRINCIPAL)
    if principal is None:
        raise Unauthorized("no credentials were checked for this request")
    return principal


def client_of(scope: Scope) -> str | None:
    """The caller's address (from X-Forwarded-For only behind a trusted proxy)."""
    client: str | None = scope.get(CLIENT)
    return client


def runtime_of(request: HTTPConnection) -> Runtime:
    """The running server's parts (set by the lifespan in ``api/app.py``)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _registry(request: Request) -> Registry:
    return runtime_of(request).registry


async def _tester(request: Request) -> ConnectionTester:
    return runtime_of(request).tester


async def _pools(request: Request) -> PoolService:
    return runtime_of(request).pools


async def _usage(request: Request) -> UsageReports:
    return runtime_of(request).usage


async def _webhooks(request: Request) -> WebhookService:
    return runtime_of(request).webhooks


async def _principal(request: Request) -> Principal:
    return principal_of(request.scope)


async def _admin(request: Request) -> Principal:
    principal = principal_of(request.scope)
    if not principal.is_admin:
        raise Forbidden("this needs an admin token")
    return principal


async def _audit(request: Request) -> AuditLog:
    return runtime_of(request).audit


async def _actor(request: Request) -> Actor:
    scope = request.scope
    return Actor(principal_of(scope), client_of(scope), runtime_of(request).audit)


async def _tokens(request: Request) -> TokenService:
    return runtime_of(request).tokens


async def _client(request: Request) -> str | None:
    return client_of(request.scope)


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


def refuse_unknown_params(request: Request, known: frozenset[str]) -> None:
    """A list route's query may hold only its own parameters: a typo is a 422, not ignored."""
    unknown = set(request.query_params) - known
    if unknown:
        name = sorted(unknown)[0][:64]
        raise InvalidInput(f"unknown query parameter '{name}'", field=name)


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
PoolsDep = Annotated[PoolService, Depends(_pools)]
TesterDep = Annotated[ConnectionTester, Depends(_tester)]
UsageDep = Annotated[UsageReports, Depends(_usage)]
WebhooksDep = Annotated[WebhookService, Depends(_webhooks)]
PrincipalDep = Annotated[Principal, Depends(_principal)]
AdminDep = Annotated[Principal, Depends(_admin)]
TokensDep = Annotated[TokenService, Depends(_tokens)]
AuditDep = Annotated[AuditLog, Depends(_audit)]
ActorDep = Annotated[Actor, Depends(_actor)]
ClientDep = Annotated[str | None, Depends(_client)]
Clean = Depends(clean_request)
QueryBool = Annotated[bool | None, BeforeValidator(_query_bool)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip")]
