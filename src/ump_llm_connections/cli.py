"""``ump-llm``: run the server, migrate the database, manage connections from a terminal.

The ``connections`` commands work on the database directly (the same registry the server uses),
so they need no running server; they say on stderr which database they opened (``datadir``).
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import orjson
import typer
from pydantic import ValidationError

from ump_llm_connections import __version__
from ump_llm_connections.config import LOOPBACK_HOSTS, Settings, bind_address
from ump_llm_connections.datadir import locate, remember
from ump_llm_connections.domain import (
    DEFAULT_TEST_PROMPT,
    ApiFormat,
    ConnectionCreate,
    ConnectionFilters,
    ConnectionRead,
    ConnectionStatus,
    ConnectionType,
    TestRequest,
    invalid_input,
)
from ump_llm_connections.errors import ConfigurationError, UmpError
from ump_llm_connections.providers.errors import ProviderError
from ump_llm_connections.secrets import generate_key
from ump_llm_connections.service import Service, open_service

app = typer.Typer(
    help="Manage, test and serve LLM connections.", no_args_is_help=True, add_completion=False
)
connections_app = typer.Typer(help="Add, list, show and remove connections.", no_args_is_help=True)
app.add_typer(connections_app, name="connections")

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


def _settings(database_url: str | None, **overrides: Any) -> Settings:
    settings = Settings(**overrides)
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    return settings


def _connections_settings(database_url: str | None) -> Settings:
    """The database the server uses, said on stderr; never a new one made by accident."""
    try:
        located = locate(database_url)
    except ConfigurationError as exc:
        raise _fail(exc.message, 2) from None
    typer.echo(located.describe(), err=True)
    return located.settings


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _with_service(settings: Settings, work: Callable[[Service], Awaitable[T]]) -> T:
    async def run() -> T:
        service = await open_service(settings)
        try:
            return await work(service)
        finally:
            await service.close()

    try:
        return asyncio.run(run())
    except ConfigurationError as exc:
        raise _fail(exc.message, 2) from None
    except UmpError as exc:
        raise _fail(exc.message) from None


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(envvar="UMP_HOST", help="Address to bind: 127.0.0.1, ::1 or [::1].")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="UMP_PORT", help="Port to listen on.")] = 8002,
    database_url: DatabaseUrl = None,
    log_level: Annotated[
        str, typer.Option(envvar="UMP_LOG_LEVEL", help="debug, info, warning or error.")
    ] = "info",
    shutdown_grace: Annotated[
        int,
        typer.Option(
            envvar="UMP_SHUTDOWN_GRACE_S",
            min=0,
            max=3600,
            help="Seconds calls in flight get to finish on SIGTERM; a second signal stops at once.",
        ),
    ] = 10,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            envvar="UMP_ACCESS_LOG",
            help="Log a line per request (off: usage rows record every gateway call).",
        ),
    ] = False,
) -> None:
    """Start the API server (migrations are applied first)."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from ump_llm_connections.api.app import create_app
    from ump_llm_connections.api.server import Server

    host = bind_address(host)  # "[::1]" -> "::1", which uvicorn can bind
    if not _is_loopback(host):
        raise _fail(
            f"refusing to bind {host}: the API has no authentication yet, so it serves only "
            "loopback. Bind 127.0.0.1 and put an authenticating reverse proxy in front.",
            2,
        )
    settings = _settings(
        database_url,
        host=host,
        port=port,
        log_level=log_level,
        shutdown_grace_s=shutdown_grace,
        access_log=access_log,
    )
    _with_service(settings, _nothing)  # migrate and check the key now, with a clean message
    remember(settings)  # so the connections commands find this database from anywhere
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["ump_llm_connections"] = {
        "handlers": ["default"],
        "level": log_level.upper(),
        "propagate": False,
    }
    application = create_app(settings)
    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config,
        access_log=settings.access_log,
        server_header=False,
        proxy_headers=False,  # loopback only: no proxy's X-Forwarded-* to trust
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
    server = Server(config, application.abandon)
    server.run()
    if not server.started:
        raise typer.Exit(3)  # as uvicorn.run does: the app did not start (the log says why)


async def _nothing(_: Service) -> None:
    return None


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Apply the database migrations (the server also does this on start)."""
    settings = _settings(database_url)
    _with_service(settings, _nothing)
    typer.echo("database is up to date")


@app.command("generate-key")
def generate_key_command() -> None:
    """Print a new server key for UMP_SECRET_KEY."""
    typer.echo(generate_key())


@connections_app.command("list")
def list_connections(
    database_url: DatabaseUrl = None,
    connection_type: Annotated[
        ConnectionType | None, typer.Option("--type", help="Only this type.")
    ] = None,
    livekit: Annotated[bool | None, typer.Option("--livekit/--no-livekit")] = None,
    mcp: Annotated[bool | None, typer.Option("--mcp/--no-mcp")] = None,
    automation: Annotated[bool | None, typer.Option("--automation/--no-automation")] = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive")] = None,
    status: Annotated[ConnectionStatus | None, typer.Option(help="Only this status.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Only with this tag (repeatable).")] = None,
    search: Annotated[str | None, typer.Option(help="Search name, description, model.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    as_json: AsJson = False,
) -> None:
    """List connections."""
    filters = ConnectionFilters(
        connection_type=connection_type,
        use_in_livekit=livekit,
        use_in_mcp=mcp,
        use_in_automation=automation,
        is_active=active,
        status=status,
        tags=tag or [],
        q=search,
    )
    page = _with_service(
        _connections_settings(database_url), lambda s: s.registry.find(filters, limit=limit)
    )
    if as_json:
        typer.echo(page.model_dump_json(indent=2))
        return
    rows = [
        (
            c.name,
            c.connection_type.value,
            c.model_name,
            c.status.value,
            "yes" if c.is_active else "no",
            ",".join(_uses(c)) or "-",
            str(c.id),
        )
        for c in page.items
    ]
    header = ("NAME", "TYPE", "MODEL", "STATUS", "ACTIVE", "USE IN", "ID")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    shown = len(page.items)
    typer.echo(f"{shown} of {page.total} connection{'s' if page.total != 1 else ''}")


def _uses(c: ConnectionRead) -> list[str]:
    flags = (c.use_in_livekit, c.use_in_mcp, c.use_in_automation)
    return [n for n, on in zip(("livekit", "mcp", "automation"), flags, strict=True) if on]


@connections_app.command("add")
def add_connection(
    name: Annotated[str, typer.Option(help="A unique name, e.g. 'Local Ollama'.")],
    connection_type: Annotated[ConnectionType, typer.Option("--type", help="Connection type.")],
    model: Annotated[str, typer.Option(help="Model name, e.g. llama3.2:3b.")],
    base_url: Annotated[
        str | None, typer.Option(help="Endpoint; defaults to the type's usual one.")
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            help="Read the API key from this environment variable (keeps it out of "
            "shell history and the process list)."
        ),
    ] = None,
    api_key_stdin: Annotated[
        bool, typer.Option(help="Read the API key from standard input.")
    ] = False,
    api_format: Annotated[ApiFormat | None, typer.Option(help="Override the wire format.")] = None,
    description: Annotated[str, typer.Option()] = "",
    organization_id: Annotated[str | None, typer.Option(help="OpenAI organization.")] = None,
    api_version: Annotated[str | None, typer.Option(help="Azure api-version.")] = None,
    deployment: Annotated[str | None, typer.Option(help="Azure deployment.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds (default 60).")] = None,
    max_retries: Annotated[int | None, typer.Option(help="Retries (default 2).")] = None,
    temperature: Annotated[float | None, typer.Option()] = None,
    max_tokens: Annotated[int | None, typer.Option()] = None,
    livekit: Annotated[bool, typer.Option("--livekit", help="Use in LiveKit.")] = False,
    mcp: Annotated[bool, typer.Option("--mcp", help="Use in MCP.")] = False,
    automation: Annotated[bool, typer.Option("--automation", help="Use in automation.")] = False,
    inactive: Annotated[bool, typer.Option("--inactive", help="Create it deactivated.")] = False,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
) -> None:
    """Add a connection. The API key is never taken on the command line."""
    api_key: str | None = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise _fail(f"environment variable {api_key_env} is empty or not set")
    elif api_key_stdin:
        api_key = sys.stdin.readline().strip() or None
    fields: dict[str, Any] = {
        "name": name,
        "connection_type": connection_type,
        "model_name": model,
        "base_url": base_url,
        "api_key": api_key,
        "api_format": api_format,
        "description": description,
        "organization_id": organization_id,
        "api_version": api_version,
        "deployment": deployment,
        "timeout": timeout,
        "max_retries": max_retries,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "use_in_livekit": livekit,
        "use_in_mcp": mcp,
        "use_in_automation": automation,
        "is_active": not inactive,
        "tags": tag or [],
    }
    try:
        data = ConnectionCreate.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise _fail(invalid_input(exc).message) from None
    created = _with_service(_connections_settings(database_url), lambda s: s.registry.create(data))
    _print_connection(created, as_json)


@connections_app.command("show")
def show_connection(
    ref: Annotated[str, typer.Argument(help="Connection name or id.")],
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
) -> None:
    """Show one connection."""
    found = _with_service(_connections_settings(database_url), lambda s: s.registry.get(ref))
    _print_connection(found, as_json)


@connections_app.command("rm")
def remove_connection(
    ref: Annotated[str, typer.Argument(help="Connection name or id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Remove a connection (and its usage and health history)."""
    settings = _connections_settings(database_url)
    found = _with_service(settings, lambda s: s.registry.get(ref))
    if not yes:
        typer.confirm(f"Remove connection '{found.name}' ({found.id})?", abort=True)
    _with_service(settings, lambda s: s.registry.delete(str(found.id)))
    typer.echo(f"removed {found.name}")


@connections_app.command("test")
def check_connection(
    ref: Annotated[str, typer.Argument(help="Connection name or id.")],
    prompt: Annotated[str, typer.Option(help="The test prompt.")] = DEFAULT_TEST_PROMPT,
    max_tokens: Annotated[int, typer.Option(help="Most tokens to generate.")] = 50,
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
) -> None:
    """Send a test prompt through the connection and record the result (exit 1 on failure)."""
    try:
        request = TestRequest(prompt=prompt, max_tokens=max_tokens)
    except ValidationError as exc:
        raise _fail(invalid_input(exc).message) from None
    result = _with_service(
        _connections_settings(database_url), lambda s: s.tester.test(ref, request)
    )
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    elif result.success:
        tokens = result.tokens
        counts = (
            f", {tokens.prompt} prompt + {tokens.completion} completion tokens"
            if tokens.completion is not None
            else ", no token counts reported"
        )
        first = f" (first token {result.ttft_ms:.0f} ms)" if result.ttft_ms is not None else ""
        typer.secho(f"OK {ref}: {result.latency_ms:.0f} ms{first}{counts}", fg=typer.colors.GREEN)
        typer.echo(f"   {result.response_preview!r}")
    else:
        typer.secho(f"FAILED {ref}: {result.error_kind}: {result.error}", fg=typer.colors.RED)
    if not result.success:
        raise typer.Exit(1)


@connections_app.command("models")
def list_models(
    ref: Annotated[str, typer.Argument(help="Connection name or id.")],
    database_url: DatabaseUrl = None,
) -> None:
    """List the models the connection's upstream offers."""
    try:
        models = _with_service(_connections_settings(database_url), lambda s: s.tester.models(ref))
    except ProviderError as exc:
        raise _fail(f"{exc.kind}: {exc.message}") from None
    for model in models:
        typer.echo(model)


def _print_connection(c: ConnectionRead, as_json: bool) -> None:
    if as_json:
        typer.echo(c.model_dump_json(indent=2))
        return
    data = orjson.loads(c.model_dump_json())
    width = max(len(k) for k in data)
    for key, value in data.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        typer.echo(f"{key.ljust(width)}  {'-' if shown in (None, '', {}) else shown}")


if __name__ == "__main__":
    app()
