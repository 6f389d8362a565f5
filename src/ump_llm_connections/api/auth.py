"""Who is calling: the auth middleware in front of the REST API and the gateway (pure ASGI).

It puts the caller (a ``Principal``) and the client's address into the request's scope, where
``api/deps.py`` reads them.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from ump_llm_connections.api.deps import CLIENT, PRINCIPAL
from ump_llm_connections.domain.access import OPEN_ACCESS


class AuthMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            scope[CLIENT] = client[0] if client else None
            scope[PRINCIPAL] = OPEN_ACCESS
        await self.app(scope, receive, send)
