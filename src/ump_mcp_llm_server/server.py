"""The MCP server: its handlers, and its two transports (stdio, streamable HTTP).

Every call is made with the caller's token: the bearer token of the HTTP request when there is
one, else the server's own (``UMP_API_TOKEN``). Whatever fails in a tool call — an upstream
down or over its limits, a connection switched off, an unknown tool, the main server gone — is
a tool result with ``isError`` and the SDK's message, which says what to do (and never holds a
key or a token).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.requests import Request

from ump_llm_connections import ConnectionInactive, UMPError, __version__
from ump_mcp_llm_server.catalog import Catalog, Catalogs
from ump_mcp_llm_server.tools import (
    LIST_TOOL,
    TEST_TOOL,
    QueryArgs,
    TestArgs,
    describe,
    error_result,
    json_text,
    text_result,
)

__all__ = ["NAME", "McpServer", "build_server", "http_session_manager", "run_stdio"]

log = logging.getLogger(__name__)

NAME = "ump-llm"
INSTRUCTIONS = (
    "Each query_* tool sends a prompt to one LLM connection (or pool) of the ump-llm-connections "
    "registry and answers its reply. list_llm_connections shows them; test_llm_connection "
    "checks one. The list follows the registry and changes as connections are added or removed."
)
Context = ServerRequestContext[Catalogs, Any]


class McpServer(Server[Catalogs]):
    """A lowlevel server that always announces ``tools.listChanged`` (the HTTP transport asks
    for its options without arguments)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True),
            experimental_capabilities,
            extensions,
        )


def build_server(catalogs: Catalogs) -> McpServer:
    """The server; its lifespan runs the catalogs' followers."""

    async def list_tools(
        ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=await _catalog(catalogs, ctx).tools())

    async def call_tool(ctx: Context, params: types.CallToolRequestParams) -> types.CallToolResult:
        catalog = _catalog(catalogs, ctx)
        try:
            return await _call(catalog, params.name, params.arguments or {})
        except ValidationError as exc:
            return error_result(f"invalid arguments for {params.name}: {_problems(exc)}")
        except UMPError as exc:
            return error_result(exc.message)
        except Exception as exc:  # a tool call never fails the protocol
            log.exception("tool %s failed", params.name[:100], exc_info=exc)
            return error_result("the MCP server failed unexpectedly; its log (stderr) says why")

    async def listen(
        ctx: Context, params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        return await _catalog(catalogs, ctx).listen(ctx, params)

    async def remember_sessions(ctx: Context, call_next: CallNext) -> HandlerResult:
        """Note the handshake-era sessions, to tell them when the tools change."""
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            key = _session_key(ctx)
            if key is not None:
                _catalog(catalogs, ctx).remember(key, ctx.session)
        return await call_next(ctx)

    server = McpServer(
        NAME,
        version=__version__,
        title="ump-llm-connections",
        instructions=INSTRUCTIONS,
        lifespan=catalogs.running,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_subscriptions_listen=listen,
    )
    server.middleware.append(remember_sessions)
    return server


async def _call(catalog: Catalog, name: str, arguments: Mapping[str, Any]) -> types.CallToolResult:
    if name == LIST_TOOL:
        await catalog.refresh()
        return text_result(json_text([describe(tool, c) for tool, c in catalog.entries]))
    if name == TEST_TOOL:
        args = TestArgs.model_validate(arguments)
        return await _test(catalog, args)
    connection = await catalog.find(name)
    if connection is None:
        return error_result(
            f"no tool is named {name!r}: the connection may have been renamed, deleted, "
            f"deactivated or disabled for MCP; list the tools again (or call {LIST_TOOL})"
        )
    query = QueryArgs.model_validate(arguments)
    response = await connection.generate(
        query.prompt,
        system=query.system,
        max_tokens=query.max_tokens,
        temperature=query.temperature,
    )
    return text_result(response.text)


async def _test(catalog: Catalog, args: TestArgs) -> types.CallToolResult:
    manager = catalog.manager
    try:
        connection = await manager.get_connection(args.name_or_id, use_in_mcp=True)
    except ConnectionInactive:  # enabled for MCP but switched off: a test says why
        connection = None
    if connection is not None and connection.kind == "pool":
        return error_result(
            f"{connection.name!r} is a pool: test its members ({connection.model_name})"
        )
    target = connection.id if connection is not None else args.name_or_id
    result = await manager.test_connection(target, prompt=args.prompt, max_tokens=args.max_tokens)
    answer = text_result(json_text(result))
    answer.is_error = not (isinstance(result, dict) and result.get("success"))
    return answer


def _catalog(catalogs: Catalogs, ctx: Context) -> Catalog:
    return catalogs.get(_bearer(ctx))


def _bearer(ctx: Context) -> str | None:
    """The token of the HTTP request's ``Authorization: Bearer``, if any (none on stdio)."""
    request = ctx.request
    if not isinstance(request, Request):
        return None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def _session_key(ctx: Context) -> str | None:
    request = ctx.request
    if not isinstance(request, Request):
        return "stdio"  # one session per process
    return request.headers.get("mcp-session-id")


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'arguments'}: {error['msg']}"
        for error in exc.errors()
    )


async def run_stdio(catalogs: Catalogs) -> None:
    from mcp.server.stdio import stdio_server

    server = build_server(catalogs)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def http_session_manager(
    catalogs: Catalogs, *, security: TransportSecuritySettings | None
) -> StreamableHTTPSessionManager:
    """The streamable HTTP transport: run it (``async with manager.run()``) while serving, and
    hand it the requests (``manager.handle_request``)."""
    return StreamableHTTPSessionManager(build_server(catalogs), security_settings=security)
