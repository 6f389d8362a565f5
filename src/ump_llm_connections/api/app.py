"""The application factory: routes, error rendering and guards. The lifespan starts and stops
the ``Runtime`` (``runtime.py``), which owns every part of the running server; ``app.state``
holds only that runtime, and the routes reach it through ``api/deps.py``."""

from __future__ import annotations

import gc
import ipaddress
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from ump_llm_connections import __version__
from ump_llm_connections.api import (
    audit,
    compute,
    connections,
    events,
    gateway,
    mcp,
    pools,
    presets,
    tokens,
    usage,
    webhooks,
)
from ump_llm_connections.api.auth import AuthMiddleware
from ump_llm_connections.api.deps import AdminDep, client_of, principal_of, runtime_of
from ump_llm_connections.api.docs import add_docs
from ump_llm_connections.api.guard import GuardMiddleware
from ump_llm_connections.api.responses import REST_ERRORS, errors
from ump_llm_connections.api.sse import OpenStreams
from ump_llm_connections.api.ui import add_ui
from ump_llm_connections.config import LOOPBACK_HOSTS, Settings
from ump_llm_connections.domain import invalid_input
from ump_llm_connections.domain.audit import AuditAction, AuditOutcome, AuditTarget, TargetType
from ump_llm_connections.errors import Forbidden, UmpError, error_body
from ump_llm_connections.providers.errors import ErrorKind, ProviderError
from ump_llm_connections.runtime import Runtime

log = logging.getLogger(__name__)

HTTP_ERROR_TYPES = {
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


STREAMS_CLOSE_S = 5.0  # how long streams get to end once told the server is stopping
# Collect the youngest generation after this many net allocations (CPython's default is 700).
GC_YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Keep the garbage collector off the request path once start-up is done.

    Requests make (almost) no cyclic garbage, but with many in flight their live objects push
    the allocation count past CPython's default threshold every few requests, get promoted, and
    trigger full collections that walk the whole start-up heap (modules, schemas, routes): tens
    of milliseconds each, and throughput at 64 connections fell below that at 8. Freezing what
    start-up built takes it out of every collection; a higher young threshold makes the rest rare.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def create_app(settings: Settings | None = None) -> App:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        runtime = app.state.runtime = await Runtime.open(settings)
        await runtime.start()
        settle_heap()
        try:
            yield
        finally:
            # Streams still open after the grace period end with an error event (and their
            # usage is recorded) before the recorder's last write.
            await app.streams.close(STREAMS_CLOSE_S)
            await runtime.stop()

    app = App(
        title="ump-llm-connections",
        version=__version__,
        description="Manage, test and serve every LLM connection from one place.",
        lifespan=lifespan,
        docs_url=None,  # add_docs serves both pages without a CDN
        redoc_url=None,
    )
    add_docs(app)
    for module in (connections, usage, pools, presets, webhooks, tokens, audit, events, compute):
        app.include_router(module.router, responses=REST_ERRORS)
    mcp.mount(app, settings)

    @app.get("/healthz", tags=["service"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["service"],
        summary="Readiness: the database answers",
        responses=errors(503),
    )
    async def readyz(request: Request) -> JSONResponse:
        try:
            await runtime_of(request).registry.version()
        except Exception as exc:  # any failure to reach the database means not ready
            message = f"database unavailable: {type(exc).__name__}"
            return JSONResponse(error_body("not_ready", message), status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get(
        "/metrics",
        tags=["service"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"description": "Prometheus text exposition format"}},
    )
    async def metrics_endpoint(request: Request, _: AdminDep) -> Response:
        return Response(runtime_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)

    add_ui(app)

    @app.exception_handler(UmpError)
    async def ump_error(request: Request, exc: UmpError) -> JSONResponse:
        if isinstance(exc, Forbidden):
            await _audit_refusal(request, exc)
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    @app.exception_handler(ProviderError)
    async def provider_error(_: Request, exc: ProviderError) -> JSONResponse:
        status = 504 if exc.kind is ErrorKind.timeout else 502
        return JSONResponse(error_body(exc.kind.value, exc.message), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if errors and errors[0].get("type") == "json_invalid":
            return JSONResponse(error_body("invalid_json", "body is not valid JSON"), 400)
        error = invalid_input(errors)
        return JSONResponse(error.to_dict(), status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = HTTP_ERROR_TYPES.get(exc.status_code, "http_error")
        body = error_body(kind, str(exc.detail))
        headers = exc.headers
        allowed = _allowed_methods(request) if exc.status_code == 405 else None
        if allowed:  # Starlette names only the first matching route's methods
            headers = {**(headers or {}), "Allow": allowed}
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
        message = "internal error; the server log has the details"
        return JSONResponse(error_body("internal_error", message), status_code=500)

    allowed = set(LOOPBACK_HOSTS) | {settings.host} | set(settings.allowed_hosts)
    proxies = tuple(ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies)
    always = settings.auth_always
    app.add_middleware(AuthMiddleware, always=always, trusted_proxies=proxies)
    app.add_middleware(
        GuardMiddleware, allowed_hosts=allowed, max_body_bytes=settings.max_body_bytes
    )
    app.gateway_asgi = GuardMiddleware(
        AuthMiddleware(gateway.router, always=always, trusted_proxies=proxies),
        allowed_hosts=allowed,
        max_body_bytes=settings.max_body_bytes,
    )
    return app


def _allowed_methods(request: Request) -> str | None:
    """The methods the OpenAPI document gives for this path, for a 405's ``Allow``: those of
    the matching template with the fewest parameters (``/summary`` before ``/{id}``)."""
    path = request.url.path
    best: tuple[int, list[str]] | None = None
    for template, operations in request.app.openapi()["paths"].items():  # built once, cached
        params = template.count("{")
        pattern = "[^/]+".join(map(re.escape, re.split(r"\{[^/]+\}", template)))
        if (best is None or params < best[0]) and re.fullmatch(pattern, path):
            best = (params, sorted(method.upper() for method in operations))
    return ", ".join(best[1]) if best else None


class App(FastAPI):
    """FastAPI for the REST API and the docs. The gateway's ``/v1`` routes are the hot path:
    they go straight to their own router behind the same guards, past FastAPI's middleware."""

    gateway_asgi: ASGIApp

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.streams = OpenStreams()  # the gateway's open event streams, ended on shutdown

    def stopping(self) -> None:
        """A shutdown begins: end the event streams (``GET /api/events``) at once, as they never
        end by themselves and uvicorn would wait its whole grace period for them."""
        runtime: Runtime | None = getattr(self.state, "runtime", None)
        if runtime is not None:
            runtime.service.events.end_feeds()

    async def abandon(self) -> None:
        """A forced exit skips the lifespan's shutdown: end the streams (their usage recorded)
        and spill the usage not stored yet, so that the next start stores it."""
        await self.streams.close(1.0)
        runtime: Runtime | None = getattr(self.state, "runtime", None)
        if runtime is not None:
            runtime.abandon()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            scope["app"] = self
            await self.gateway_asgi(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


async def _audit_refusal(request: Request, exc: Forbidden) -> None:
    """A 403 goes in the audit log: who was refused what (the route, not the raw path)."""
    route = getattr(request.scope.get("route"), "path", None) or request.url.path
    await runtime_of(request).audit.record(
        principal_of(request.scope),
        client_of(request.scope),
        AuditAction.access_denied,
        target=AuditTarget(TargetType.route, None, f"{request.method} {route}"),
        fields=[exc.field] if exc.field else (),
        outcome=AuditOutcome.denied,
    )
