"""``/v1``: the OpenAI-compatible gateway. Plain Starlette endpoints: this is the hot path.

The caller names a connection as ``model`` and declares what it is with ``X-UMP-Source``
(``livekit``, ``mcp``, ``automation``; anything else calling directly is ``api``) — unless its
token is bound to sources, which then decide.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from ump_llm_connections.api.deps import principal_of, runtime_of
from ump_llm_connections.api.sse import EventStream, end_with
from ump_llm_connections.domain import Source
from ump_llm_connections.domain.access import Principal
from ump_llm_connections.gateway.core import Gateway, GatewayError, Stream
from ump_llm_connections.gateway.wire import (
    ChunkWriter,
    WireError,
    error_json,
    parse_request,
    render_response,
)
from ump_llm_connections.providers.errors import ErrorKind, ProviderError

ID_PREFIX = f"chatcmpl-{os.urandom(8).hex()}-"  # unique per process; a counter after it
_ids = itertools.count(1)
SOURCES = frozenset(Source)
SOURCES_LISTED = [s.value for s in Source]
JSON = "application/json"


def _gateway(request: Request) -> Gateway:
    return runtime_of(request).gateway


def _error(
    status: int,
    kind: str,
    code: str | None,
    message: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(error_json(message, kind, code, param), status, headers, media_type=JSON)


def _upstream_error(exc: ProviderError) -> Response:
    headers = None
    if exc.kind is ErrorKind.rate_limited:
        status = 429
        if exc.retry_after is not None:
            headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
    elif exc.kind is ErrorKind.timeout:
        status = 504
    else:
        status = 502
    return _error(status, "upstream_error", exc.kind.value, exc.message, headers=headers)


def _source(request: Request, caller: Principal) -> str:
    """The source a call counts as. A token bound to sources decides it (``X-UMP-Source`` may
    only pick one of them); otherwise the header says, ``api`` by default."""
    declared = request.headers.get("x-ump-source")
    wanted: Source | None = None
    if declared is not None:
        name = declared.strip().lower()
        if name not in SOURCES:
            raise GatewayError(
                400,
                "invalid_request_error",
                "invalid_source",
                f"X-UMP-Source must be {', '.join(SOURCES_LISTED[:-1])} or {SOURCES_LISTED[-1]}",
                "X-UMP-Source",
            )
        wanted = Source(name)
    source = caller.source_for(wanted)
    if source is None:
        allowed = ", ".join(sorted(caller.sources))
        raise GatewayError(
            403,
            "permission_error",
            "source_not_allowed",
            f"this token may call only as {allowed}, not as {wanted}",
            "X-UMP-Source",
        )
    return source.value


async def chat_completions(request: Request) -> Response | EventStream:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return _error(400, "invalid_request_error", "invalid_json", "the body is not valid JSON")
    gateway = _gateway(request)
    caller = principal_of(request.scope)
    try:
        source = _source(request, caller)
        model, chat, streaming, include_usage = parse_request(body)
        key = request.headers.get("x-ump-ab-key") or _user(body)
        plan = gateway.plan(model, source, key, caller)
        response_id = f"{ID_PREFIX}{next(_ids):x}"
        created = int(time.time())
        if not streaming:
            answer, route = await gateway.complete(plan, chat, source)
            payload = render_response(answer, model=model, response_id=response_id, created=created)
            return Response(payload, headers=_served_by(route.name), media_type=JSON)
        # The first chunk is awaited here: an upstream that fails at once gets a proper status.
        opened = await gateway.open_stream(plan, chat, source)
    except WireError as exc:
        return _error(400, "invalid_request_error", "invalid_request", exc.message, exc.param)
    except GatewayError as exc:
        headers = None
        if exc.retry_after is not None:
            headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
        return _error(exc.status, exc.kind, exc.code, exc.message, exc.param, headers)
    except ProviderError as exc:
        return _upstream_error(exc)
    writer = ChunkWriter(model=model, response_id=response_id, created=created)
    return EventStream(  # stops the upstream when the client leaves (see api/sse.py)
        _events(writer, opened, include_usage),
        {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **_served_by(opened.route.name)},
        request.app.streams,
    )


def _served_by(name: str) -> dict[str, str]:
    """``X-UMP-Connection``: the connection that answered (header-safe: ASCII only)."""
    return {"X-UMP-Connection": quote(name, safe=" !#$&'()*+,-./:;=?@[]^_`{|}~")}


def _user(body: object) -> str | None:
    """OpenAI's ``user`` field: a stable end-user id, used as the A/B key if no header."""
    user = body.get("user") if isinstance(body, dict) else None
    return user if isinstance(user, str) and user else None


async def _events(
    writer: ChunkWriter, stream: Stream, include_usage: bool
) -> AsyncGenerator[bytes, None]:
    try:
        if stream.first is not None:
            yield writer.chunk(stream.first)
            async for chunk in stream.rest:
                if chunk.text or chunk.tool_calls or chunk.finish_reason:
                    yield writer.chunk(chunk)
    except ProviderError as exc:  # after the first byte: end with an error event, not a hang
        yield b"data: " + error_json(exc.message, "upstream_error", exc.kind.value) + b"\n\n"
        return
    except asyncio.CancelledError as exc:  # passed on: the gateway records why it stopped
        await end_with(stream.rest, exc)
        raise
    finally:
        await stream.rest.aclose()
    if include_usage:  # the last usage the stream reported, as its collector kept it
        yield writer.usage(stream.collected.usage)
    yield writer.done()


async def list_models(request: Request) -> Response:
    caller = principal_of(request.scope)
    try:
        source = _source(request, caller)
    except GatewayError as exc:
        return _error(exc.status, exc.kind, exc.code, exc.message, exc.param)
    directory = _gateway(request).directory
    usable = {
        r.id
        for r in directory.routes()
        if r.is_active and r.allows(source) and caller.can_see(r.owner, r.team)
    }
    data = [
        {"id": r.name, "object": "model", "created": 0, "owned_by": r.connection_type}
        for r in directory.routes()
        if r.id in usable
    ]
    data += [  # a pool is a model too, when one of its members may serve this caller
        {"id": p.name, "object": "model", "created": 0, "owned_by": "pool"}
        for p in directory.pools()
        if caller.can_see(p.owner, p.team) and any(m.connection_id in usable for m in p.members)
    ]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type=JSON)


class Endpoint:
    """A request handler as a bare ASGI app: Starlette's per-request wrapper (exception
    handling we do not use) stays off the hot path. Other methods get a 405 in OpenAI's error
    shape, and OPTIONS (a CORS preflight) a 204, both with ``Allow``; no CORS grant is given."""

    def __init__(
        self, handler: Callable[[Request], Awaitable[Response | EventStream]], *methods: str
    ) -> None:
        self.handler = handler
        self.methods = frozenset(methods)
        self.allow = ", ".join(sorted(self.methods | {"OPTIONS"}))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] in self.methods:
            response = await self.handler(Request(scope, receive, send))
        elif scope["method"] == "OPTIONS":
            response = Response(status_code=204, headers={"Allow": self.allow})
        else:
            response = _error(
                405,
                "invalid_request_error",
                "method_not_allowed",
                f"{str(scope['method'])[:20]} is not allowed here: use {self.allow}",
                headers={"Allow": self.allow},
            )
        await response(scope, receive, send)


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    path = str(scope.get("path", ""))[:200]
    response = _error(
        404,
        "invalid_request_error",
        "unknown_url",
        f"no route {path}: this gateway serves /v1/chat/completions and /v1/models",
    )
    await response(scope, receive, send)


router = Router(
    routes=[
        Route("/v1/chat/completions", Endpoint(chat_completions, "POST")),
        Route("/v1/models", Endpoint(list_models, "GET", "HEAD")),
    ],
    default=not_found,
)
