"""Who is calling: the auth middleware in front of the REST API and the gateway (pure ASGI).

Open mode — the server is bound to loopback and no token exists in the database — lets every
request through as ``OPEN_ACCESS``, as the guide's curl examples expect. Once a token exists, or
the server binds another address, every path but ``/healthz``, ``/readyz``, the web UI's page
and assets (``api/ui.py``: they hold no data) and a spot instance's heartbeat (its own token,
checked by ``api/compute.py``) needs
``Authorization: Bearer <token>``: 401 without one (or with a bad, revoked or expired one). A
client address that fails ``FAILURES_PER_MINUTE`` times in a minute gets 429 with
``Retry-After`` until the minute ends; each failure is audited.

The caller and its address go into the request's scope (``api/deps.py`` reads them). The client
address is the TCP peer, or — only when the peer is one of ``UMP_TRUSTED_PROXIES`` — the
right-most address in ``X-Forwarded-For`` that is not a trusted proxy.
"""

from __future__ import annotations

import ipaddress
import logging

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from ump_llm_connections.api.compute import is_heartbeat
from ump_llm_connections.api.deps import CLIENT, PRINCIPAL
from ump_llm_connections.api.guard import send_json
from ump_llm_connections.api.ui import is_ui_path
from ump_llm_connections.clock import utcnow
from ump_llm_connections.domain import SecretText
from ump_llm_connections.domain.access import ANONYMOUS, OPEN_ACCESS
from ump_llm_connections.domain.audit import AuditAction, AuditOutcome
from ump_llm_connections.errors import error_body
from ump_llm_connections.gateway.wire import error_json
from ump_llm_connections.runtime import Runtime
from ump_llm_connections.tokens import FAILURES_PER_MINUTE

__all__ = ["OPEN_PATHS", "AuthMiddleware", "Networks", "client_address"]

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
GATEWAY_PREFIX = "/v1/"


def client_address(scope: Scope, trusted: Networks) -> str | None:
    peer = scope.get("client")
    address: str | None = peer[0] if peer else None
    if not trusted or address is None or not _within(address, trusted):
        return address
    forwarded = [
        value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"
    ]
    hops = [hop.strip() for value in forwarded for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _within(hop, trusted):
            return str(hop[:64])
    return address


def _within(address: str, networks: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


class AuthMiddleware:
    """The tokens and the failure counts belong to the running server (the lifespan builds it
    after this middleware), so they are read from its ``Runtime`` per request."""

    def __init__(self, app: ASGIApp, *, always: bool, trusted_proxies: Networks = ()) -> None:
        self.app = app
        self.always = always
        self.trusted = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = client_address(scope, self.trusted)
        scope[CLIENT] = client
        if scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        runtime: Runtime = scope["app"].state.runtime
        tokens, throttle = runtime.token_cache, runtime.throttle
        if not self.always and not tokens.any:
            scope[PRINCIPAL] = OPEN_ACCESS
            await self.app(scope, receive, send)
            return
        if is_ui_path(scope["path"]):  # checked only once tokens are on: no cost in open mode
            await self.app(scope, receive, send)
            return
        if is_heartbeat(scope["path"]):  # the instance's own token, checked by the route
            await self.app(scope, receive, send)
            return
        gateway = scope["path"].startswith(GATEWAY_PREFIX)
        key = client or "unknown"
        wait = throttle.retry_after(key)
        if wait is not None:
            message = "too many failed sign-ins from this address: wait and try again"
            headers = [(b"retry-after", str(max(1, round(wait))).encode())]
            await _refuse(send, 429, "too_many_attempts", message, gateway, headers)
            return
        token = _bearer(scope)
        if token is None:
            message = "this server needs a token: send Authorization: Bearer <token>"
            await _refuse(send, 401, "unauthorized", message, gateway, _CHALLENGE)
            return
        check = tokens.check(token, utcnow())
        if check.principal is None:
            throttled = throttle.failed(key) >= FAILURES_PER_MINUTE
            await _refused(runtime, client, check.reason, throttled)
            message = f"{check.reason}: send Authorization: Bearer <token> with a valid token"
            await _refuse(send, 401, "unauthorized", message, gateway, _CHALLENGE)
            return
        scope[PRINCIPAL] = check.principal
        await self.app(scope, receive, send)


async def _refused(runtime: Runtime, client: str | None, reason: str, throttled: bool) -> None:
    """A refused token in the log and the audit log (never the token), and the address's
    throttling once it starts."""
    log.warning("refused a token from %s: %s", client or "an unknown address", reason)
    audit, denied = runtime.audit, AuditOutcome.denied
    await audit.record(ANONYMOUS, client, AuditAction.auth_failure, outcome=denied)
    if throttled:
        await audit.record(ANONYMOUS, client, AuditAction.auth_throttled, outcome=denied)


_CHALLENGE = [(b"www-authenticate", b'Bearer realm="ump-llm-connections"')]


def _bearer(scope: Scope) -> SecretText | None:
    """The token of ``Authorization: Bearer <token>``, sealed at once."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() == b"bearer" and credentials.strip():
                return SecretText(credentials.strip().decode("latin-1"))
            return None
    return None


async def _refuse(
    send: Send,
    status: int,
    kind: str,
    message: str,
    gateway: bool,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """The REST API's error shape, or OpenAI's on the gateway (its clients parse that one)."""
    if gateway:
        body = error_json(message, "authentication_error" if status == 401 else kind, kind)
    else:
        body = orjson.dumps(error_body(kind, message, "Authorization" if status == 401 else None))
    await send_json(send, status, body, headers)
