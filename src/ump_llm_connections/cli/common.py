"""What the commands share: the database option, settings, failing with a message, and
running a piece of work on an opened service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

import typer

from ump_llm_connections.audit import AuditLog
from ump_llm_connections.config import Settings
from ump_llm_connections.datadir import locate
from ump_llm_connections.domain.access import COMMAND_LINE
from ump_llm_connections.domain.audit import AuditAction, AuditTarget
from ump_llm_connections.errors import ConfigurationError, UmpError
from ump_llm_connections.service import Service, open_service
from ump_llm_connections.store.audit import AuditStore

__all__ = [
    "AsJson",
    "DatabaseUrl",
    "audited",
    "connections_settings",
    "fail",
    "settings_for",
    "with_service",
]

T = TypeVar("T")

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="UMP_DATABASE_URL",
        help="Database URL (default: SQLite in $UMP_DATA_DIR).",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def settings_for(database_url: str | None, **overrides: Any) -> Settings:
    settings = Settings(**overrides)
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    return settings


def connections_settings(database_url: str | None) -> Settings:
    """The database the server uses, said on stderr; never a new one made by accident."""
    try:
        located = locate(database_url)
    except ConfigurationError as exc:
        raise fail(exc.message, 2) from None
    typer.echo(located.describe(), err=True)
    return located.settings


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


async def audited(
    service: Service,
    action: AuditAction,
    target: AuditTarget | None = None,
    fields: Iterable[str] = (),
) -> None:
    """An audit row for a change made from the command line (``cli``, no client address)."""
    log = AuditLog(AuditStore(service.sessions), retention=timedelta(days=1))  # writes only
    await log.record(COMMAND_LINE, None, action, target=target, fields=fields)


def with_service(settings: Settings, work: Callable[[Service], Awaitable[T]]) -> T:
    async def run() -> T:
        service = await open_service(settings)
        try:
            return await work(service)
        finally:
            await service.close()

    try:
        return asyncio.run(run())
    except ConfigurationError as exc:
        raise fail(exc.message, 2) from None
    except UmpError as exc:
        raise fail(exc.message) from None
