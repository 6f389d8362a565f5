"""``ump-llm tokens``: create, list and revoke API tokens.

``create`` prints the token alone on stdout (everything else goes to stderr), so that
``TOKEN=$(ump-llm tokens create --name ci --role member)`` works. The token is shown once: only
its hash is stored. A running server sees a change within ``UMP_GATEWAY_REFRESH_S``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

import typer
from pydantic import ValidationError

from ump_llm_connections.cli.common import (
    AsJson,
    DatabaseUrl,
    audited,
    connections_settings,
    fail,
    with_service,
)
from ump_llm_connections.clock import utcnow
from ump_llm_connections.domain import Source, invalid_input
from ump_llm_connections.domain.access import Role, TokenCreate, TokenCreated, TokenRead
from ump_llm_connections.domain.audit import AuditAction, AuditTarget, TargetType
from ump_llm_connections.service import Service
from ump_llm_connections.store.tokens import TokenStore
from ump_llm_connections.tokens import TokenService

__all__ = ["parse_expiry", "tokens_app"]

tokens_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)

_SPAN = re.compile(r"(\d{1,6})\s*([mhdwy])")
_UNITS = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400, "y": 365 * 86_400}


def parse_expiry(text: str) -> timedelta:
    """``30m``, ``12h``, ``90d``, ``8w`` or ``1y``."""
    match = _SPAN.fullmatch(text.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise typer.BadParameter("use a span like 30m, 12h, 90d, 8w or 1y", param_hint="--expires")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


@tokens_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who or what uses it: a person, an agent, a job.")],
    role: Annotated[Role, typer.Option(help="admin: everything; member: its own and its team's.")],
    team: Annotated[
        str | None, typer.Option(help="The member's team (shared connections).")
    ] = None,
    sources: Annotated[
        str | None,
        typer.Option(help="Comma-separated: livekit,mcp,automation,api (default: all)."),
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="Lifetime: 30m, 12h, 90d, 8w, 1y (default: never).")
    ] = None,
    rpm: Annotated[int | None, typer.Option(help="Gateway requests per minute.")] = None,
    monthly_budget: Annotated[
        float | None, typer.Option(help="Gateway spend per calendar month (USD).")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a token and print it (alone, on stdout): it is shown only this once."""
    listed = [s.strip().lower() for s in (sources or "").split(",") if s.strip()]
    known = {s.value for s in Source}
    for source in listed:
        if source not in known:
            raise typer.BadParameter(
                f"'{source}' is not a source: use {', '.join(known)}", param_hint="--sources"
            )
    try:
        data = TokenCreate(
            name=name,
            role=role,
            team=team,
            sources=[Source(s) for s in listed],
            expires_at=utcnow() + parse_expiry(expires) if expires else None,
            rpm_limit=rpm,
            monthly_budget=monthly_budget,
        )
    except ValidationError as exc:
        raise fail(invalid_input(exc.errors()).message, 2) from None

    async def work(service: Service) -> TokenCreated:
        created = await TokenService(TokenStore(service.sessions)).create(data, created_by="cli")
        await audited(service, AuditAction.token_create, _target(created), data.model_fields_set)
        return created

    created = with_service(connections_settings(database_url), work)
    typer.echo(f"created {created.role} token {created.name!r} ({created.key_id})", err=True)
    typer.echo("it is shown only now: store it in a secret manager", err=True)
    typer.echo(created.token)


@tokens_app.command("list")
def list_tokens(database_url: DatabaseUrl = None, as_json: AsJson = False) -> None:
    """List tokens (never the tokens themselves: their key ids)."""
    found = with_service(
        connections_settings(database_url), lambda s: TokenService(TokenStore(s.sessions)).list()
    )
    if as_json:
        typer.echo("[" + ",".join(t.model_dump_json() for t in found) + "]")
        return
    if not found:
        typer.echo("no tokens: the server is open on loopback (see `ump-llm tokens create`)")
        return
    for token in found:
        typer.echo(_line(token))


@tokens_app.command("revoke")
def revoke(
    token: Annotated[str, typer.Argument(help="The token's id or key id (ump_<key id>…).")],
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a token: it stops working on every server within UMP_GATEWAY_REFRESH_S."""

    async def work(service: Service) -> TokenRead:
        revoked = await TokenService(TokenStore(service.sessions)).revoke(token)
        await audited(service, AuditAction.token_revoke, _target(revoked))
        return revoked

    revoked = with_service(connections_settings(database_url), work)
    typer.echo(f"revoked token {revoked.name!r} ({revoked.key_id})")


def _target(token: TokenRead) -> AuditTarget:
    return AuditTarget(TargetType.token, token.id, token.name)


def _line(token: TokenRead) -> str:
    state = "active" if token.active else ("revoked" if token.revoked_at else "expired")
    parts = [
        f"{token.key_id}  {token.name}",
        token.role.value,
        f"team {token.team}" if token.team else "no team",
        "sources " + ",".join(s.value for s in token.sources) if token.sources else "all sources",
        state,
    ]
    if token.expires_at:
        parts.append(f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC")
    if token.rpm_limit:
        parts.append(f"{token.rpm_limit} rpm")
    if token.monthly_budget:
        parts.append(f"${token.monthly_budget:g}/month")
    return "  ".join(parts)
