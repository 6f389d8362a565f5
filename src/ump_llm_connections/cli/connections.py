"""``ump-llm connections``: add, list, show, test and remove connections.

They work on the database directly (the same registry the server uses), so they need no running
server; they say on stderr which database they opened (``datadir``).
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, get_args

import orjson
import typer
from pydantic import ValidationError

from ump_llm_connections.cli.common import (
    AsJson,
    DatabaseUrl,
    connections_settings,
    fail,
    with_service,
)
from ump_llm_connections.domain import (
    DEFAULT_TEST_PROMPT,
    ApiFormat,
    ConnectionCreate,
    ConnectionFields,
    ConnectionFilters,
    ConnectionRead,
    ConnectionStatus,
    ConnectionType,
    Source,
    TestRequest,
    invalid_input,
)
from ump_llm_connections.providers.errors import ProviderError

connections_app = typer.Typer(help="Add, list, show and remove connections.", no_args_is_help=True)


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
    page = with_service(
        connections_settings(database_url), lambda s: s.registry.find(filters, limit=limit)
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
    return [s.value for s in Source if s.flag and getattr(c, s.flag)]


# How ``connections add`` takes each field of a connection. HAND_WRITTEN have options of their
# own below (renamed, read apart like the key, or repeated); NOT_ON_CLI are set through the API;
# every other field is a PLAIN_OPTION, its option derived from the domain model
# (tests/test_fields.py holds the three sets to ConnectionFields).
HAND_WRITTEN = {
    "name": "--name",
    "connection_type": "--type",
    "model_name": "--model",
    "base_url": "--base-url",
    "api_key": "--api-key-env / --api-key-stdin",
    "api_format": "--api-format",
    "use_in_livekit": "--livekit",
    "use_in_mcp": "--mcp",
    "use_in_automation": "--automation",
    "is_active": "--inactive",
    "tags": "--tag",
}
NOT_ON_CLI = {"extra_headers": "a mapping of header names to values, which may be secret"}
PLAIN_OPTIONS = tuple(
    name for name in ConnectionFields.model_fields if name not in {*HAND_WRITTEN, *NOT_ON_CLI}
)
OPTION_HELP = {
    "organization_id": "OpenAI organization.",
    "api_version": "Azure api-version.",
    "deployment": "Azure deployment.",
    "timeout": "Seconds (default 60).",
    "max_retries": "Retries (default 2).",
}


def _field_option(name: str) -> inspect.Parameter:
    """A keyword option for a connection field, typed as the API reads it back."""
    read_type = ConnectionRead.model_fields[name].annotation
    base = next(t for t in (*get_args(read_type), read_type) if t is not type(None))
    help_text = OPTION_HELP.get(name) or ConnectionFields.model_fields[name].description
    flag = "--{0}/--no-{0}".format(name.replace("_", "-"))
    option = typer.Option(flag, help=help_text) if base is bool else typer.Option(help=help_text)
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[base | None, option],
    )


def _with_field_options(command: Callable[..., None]) -> Callable[..., None]:
    """Put PLAIN_OPTIONS in the place of the command's ``**plain`` (Typer reads the signature)."""
    signature = inspect.signature(command, eval_str=True)
    kept = [
        p.replace(kind=p.KEYWORD_ONLY)  # Typer passes every option by name
        for p in signature.parameters.values()
        if p.kind is not p.VAR_KEYWORD
    ]
    at = next(i for i, p in enumerate(kept) if p.name == "database_url")  # before the common ones
    parameters = [*kept[:at], *(_field_option(name) for name in PLAIN_OPTIONS), *kept[at:]]
    command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    return command


@connections_app.command("add")
@_with_field_options
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
    livekit: Annotated[bool, typer.Option("--livekit", help="Use in LiveKit.")] = False,
    mcp: Annotated[bool, typer.Option("--mcp", help="Use in MCP.")] = False,
    automation: Annotated[bool, typer.Option("--automation", help="Use in automation.")] = False,
    inactive: Annotated[bool, typer.Option("--inactive", help="Create it deactivated.")] = False,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
    **plain: Any,  # the options of PLAIN_OPTIONS, added to the signature by _with_field_options
) -> None:
    """Add a connection. The API key is never taken on the command line."""
    api_key: str | None = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise fail(f"environment variable {api_key_env} is empty or not set")
    elif api_key_stdin:
        api_key = sys.stdin.readline().strip() or None
    fields: dict[str, Any] = {
        "name": name,
        "connection_type": connection_type,
        "model_name": model,
        "base_url": base_url,
        "api_key": api_key,
        "api_format": api_format,
        **plain,
        "use_in_livekit": livekit,
        "use_in_mcp": mcp,
        "use_in_automation": automation,
        "is_active": not inactive,
        "tags": tag or [],
    }
    try:
        data = ConnectionCreate.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise fail(invalid_input(exc).message) from None
    created = with_service(connections_settings(database_url), lambda s: s.registry.create(data))
    _print_connection(created, as_json)


@connections_app.command("show")
def show_connection(
    ref: Annotated[str, typer.Argument(help="Connection name or id.")],
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
) -> None:
    """Show one connection."""
    found = with_service(connections_settings(database_url), lambda s: s.registry.get(ref))
    _print_connection(found, as_json)


@connections_app.command("rm")
def remove_connection(
    ref: Annotated[str, typer.Argument(help="Connection name or id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Remove a connection (and its usage and health history)."""
    settings = connections_settings(database_url)
    found = with_service(settings, lambda s: s.registry.get(ref))
    if not yes:
        typer.confirm(f"Remove connection '{found.name}' ({found.id})?", abort=True)
    with_service(settings, lambda s: s.registry.delete(str(found.id)))
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
        raise fail(invalid_input(exc).message) from None
    result = with_service(connections_settings(database_url), lambda s: s.tester.test(ref, request))
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
        models = with_service(connections_settings(database_url), lambda s: s.tester.models(ref))
    except ProviderError as exc:
        raise fail(f"{exc.kind}: {exc.message}") from None
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
