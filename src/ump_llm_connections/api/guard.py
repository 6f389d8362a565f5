"""Request guards for a server that may run without tokens on loopback (pure ASGI, no copies).

- Host must be one this server answers to (blocks DNS rebinding from a web page): a name or an
  IPv4 address, or an IPv6 literal in brackets, then an optional ``:port``, and nothing else.
- A browser request from another origin may not write (blocks CSRF): same origin means the same
  scheme, host and port the request reached this server at (any loopback name counts as another).
- A body must be JSON and no larger than the limit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ump_llm_connections.errors import error_body

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_REMEMBERED_HOSTS = 64  # served Host headers kept parsed (a few in practice: name:port)


class GuardMiddleware:
    def __init__(self, app: ASGIApp, *, allowed_hosts: set[str], max_body_bytes: int) -> None:
        self.app = app
        self.allowed_hosts = {_bracketed(h.strip().lower()) for h in allowed_hosts}
        self.max_body_bytes = max_body_bytes
        self._served: dict[str, tuple[str, int | None]] = {}  # Host headers already parsed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k: v for k, v in scope["headers"] if k in _WANTED}
        host = headers.get(b"host", b"").decode("latin-1")
        target = self._served.get(host)
        if target is None:
            target = _split_host(host)
            if target is None or target[0] not in self.allowed_hosts:
                await _reject(send, 400, "invalid_host", f"host '{host[:100]}' is not served here")
                return
            if len(self._served) < MAX_REMEMBERED_HOSTS:
                self._served[host] = target
        method = scope["method"]
        if method not in SAFE_METHODS:
            origin = headers.get(b"origin")
            if origin is not None and not _same_origin(origin, scope["scheme"], target):
                await _reject(send, 403, "cross_origin", "cross-origin writes are not allowed")
                return
            length = headers.get(b"content-length")
            chunked = b"chunked" in headers.get(b"transfer-encoding", b"")
            if (length not in (None, b"0")) or chunked:
                ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
                if ctype != b"application/json":
                    await _reject(
                        send,
                        415,
                        "unsupported_media_type",
                        "send the body as JSON with Content-Type: application/json",
                        field="Content-Type",
                    )
                    return
                if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                    await _reject(send, 413, "payload_too_large", self._too_large())
                    return
                if length is None:
                    replayed = await self._buffered(receive, send)
                    if replayed is None:
                        return
                    receive = replayed
        await self.app(scope, receive, send)

    async def _buffered(self, receive: Receive, send: Send) -> Receive | None:
        """Read a body of unknown length up to the limit, then replay it to the app."""
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await _reject(send, 413, "payload_too_large", self._too_large())
                return None
            more = message.get("more_body", False)
        replay: list[Message] = [{"type": "http.request", "body": bytes(body), "more_body": False}]

        async def replayed() -> Message:
            return replay.pop() if replay else await receive()

        return replayed

    def _too_large(self) -> str:
        return f"request body is larger than {self.max_body_bytes} bytes"


_WANTED = frozenset({b"host", b"origin", b"content-length", b"content-type", b"transfer-encoding"})


# RFC 9110 Host: uri-host [ ":" port ]; uri-host is a reg-name, an IPv4 address or "[IPv6]".
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9._~-]+)(?::([0-9]{1,5}))?")
_ORIGIN = re.compile(r"(https?)://(\[[0-9a-f:.]+\]|[a-z0-9._~-]+)(?::([0-9]{1,5}))?")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})


def _bracketed(name: str) -> str:
    """An IPv6 address as it appears in a Host header: ``::1`` -> ``[::1]``."""
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


def _split_host(host: str) -> tuple[str, int | None] | None:
    """``(hostname, port)`` of a Host header, hostname lower-cased; None if it is malformed."""
    match = _HOST.fullmatch(host.lower())
    if match is None:
        return None
    port = match.group(2)
    return match.group(1), int(port) if port else None


def _same_origin(origin: bytes, scheme: str, target: tuple[str, int | None]) -> bool:
    """Whether a browser's Origin is the scheme, host and port this request was sent to."""
    match = _ORIGIN.fullmatch(origin.decode("latin-1").lower())
    if match is None or match.group(1) != scheme:  # "null", another scheme, a path, junk
        return False
    default = _DEFAULT_PORTS.get(scheme)
    origin_port = int(match.group(3)) if match.group(3) else default
    host, port = target
    if origin_port != (port if port is not None else default):
        return False
    name = match.group(2)
    return name == host or (name in _LOOPBACK_NAMES and host in _LOOPBACK_NAMES)


async def _reject(
    send: Send, status: int, kind: str, message: str, field: str | None = None
) -> None:
    await send_json(send, status, orjson.dumps(error_body(kind, message, field)))


async def send_json(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """A whole JSON answer from a pure ASGI middleware (this guard, and ``api/auth.py``)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
