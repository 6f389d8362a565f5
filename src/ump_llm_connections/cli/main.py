"""``ump-llm``: run the server, migrate the database, manage connections from a terminal
(``connections``: the ``connections`` module)."""

from __future__ import annotations

from typing import Annotated

import typer

from ump_llm_connections import __version__
from ump_llm_connections.cli.common import DatabaseUrl, fail, settings_for, with_service
from ump_llm_connections.cli.connections import connections_app
from ump_llm_connections.cli.keys import rotate_key
from ump_llm_connections.cli.tokens import tokens_app
from ump_llm_connections.config import bind_address, is_loopback
from ump_llm_connections.datadir import remember
from ump_llm_connections.logs import logging_config
from ump_llm_connections.secrets import generate_key
from ump_llm_connections.service import Service
from ump_llm_connections.store import migrate as migrate_sql
from ump_llm_connections.store.tokens import TokenStore

__all__ = ["app"]

app = typer.Typer(
    help="Manage, test and serve LLM connections.", no_args_is_help=True, add_completion=False
)
app.add_typer(connections_app, name="connections")
app.add_typer(tokens_app, name="tokens")
app.command("rotate-key")(rotate_key)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command()
def serve(
    host: Annotated[
        str,
        typer.Option(
            envvar="UMP_HOST",
            help="Address to bind. Other than loopback, every request needs a token.",
        ),
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

    from ump_llm_connections.api.app import create_app
    from ump_llm_connections.api.server import Server

    host = bind_address(host)  # "[::1]" -> "::1", which uvicorn can bind
    settings = settings_for(
        database_url,
        host=host,
        port=port,
        log_level=log_level,
        shutdown_grace_s=shutdown_grace,
        access_log=access_log,
    )
    # Migrate and check the key now, with a clean message; off loopback, tokens must exist.
    tokens = with_service(settings, _token_count)
    if not is_loopback(host) and tokens == 0:
        raise fail(
            f"refusing to bind {host}: other machines could reach it, and no API token exists "
            "to let anyone in. Create an admin token first:\n"
            "  ump-llm tokens create --name admin --role admin",
            2,
        )
    remember(settings)  # so the connections commands find this database from anywhere
    log_config = logging_config(settings)  # UMP_LOG_FORMAT: text or json
    application = create_app(settings)
    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config,
        access_log=settings.access_log,
        server_header=False,
        proxy_headers=False,  # X-Forwarded-For is read by api/auth.py, from trusted proxies only
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
    server = Server(config, application.abandon, application.stopping)
    server.run()
    if not server.started:
        raise typer.Exit(3)  # as uvicorn.run does: the app did not start (the log says why)


async def _nothing(_: Service) -> None:
    return None


async def _token_count(service: Service) -> int:
    return len(await TokenStore(service.sessions).all())


@app.command()
def migrate(
    database_url: DatabaseUrl = None,
    sql: Annotated[
        bool,
        typer.Option(
            "--sql",
            help="Touch no database: print the PostgreSQL DDL of the current schema (one "
            "transaction, alembic_version included), for a DBA to run with psql -f.",
        ),
    ] = False,
) -> None:
    """Apply the database migrations (the server also does this on start), or print their SQL."""
    if sql:
        typer.echo(migrate_sql.sql_script(), nl=False)
        return
    settings = settings_for(database_url)
    with_service(settings, _nothing)
    typer.echo("database is up to date")


@app.command("generate-key")
def generate_key_command() -> None:
    """Print a new server key for UMP_SECRET_KEY."""
    typer.echo(generate_key())


if __name__ == "__main__":
    app()
