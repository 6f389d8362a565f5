"""``ConnectionManager``: finds connections and pools over the server's REST API.

    manager = ConnectionManager()        # UMP_AI_API_URL, UMP_API_TOKEN
    connection = await manager.get_connection("Local Ollama", use_in_livekit=True)
    response = await connection.generate(prompt="Hello")

Nothing heavy is imported until it is used: ``aiohttp`` on the first REST call, ``openai`` on
the first gateway call. A manager may be used from several event loops one after another
(``asyncio.run`` twice in a script): each loop gets its own gateway client.
"""

from __future__ import annotations

import contextlib
import json
import os
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote, urlsplit

from ump_llm_connections.sdk.connection import Connection
from ump_llm_connections.sdk.errors import (
    ConnectionInactive,
    ConnectionNotFound,
    Forbidden,
    GatewayError,
    IntegrationNotEnabled,
    ServerUnreachable,
    UMPError,
    Unauthorized,
)

if TYPE_CHECKING:
    import asyncio

    import aiohttp
    from openai import AsyncOpenAI

__all__ = ["DEFAULT_API_URL", "ConnectionManager"]

DEFAULT_API_URL = "http://localhost:8002/api"
PAGE = 1000  # the list route's largest page
INTEGRATIONS = {"use_in_livekit": "livekit", "use_in_mcp": "mcp", "use_in_automation": "automation"}
LABELS = {"livekit": "LiveKit", "mcp": "MCP", "automation": "automation"}
RECONNECT_MAX_S = 10.0
ENDINGS = ("overflow", "shutdown", "unauthorized")  # the server ends the stream after these


class ConnectionManager:
    """The server's connections and pools. ``api_url`` defaults to ``UMP_AI_API_URL`` (else
    ``http://localhost:8002/api``), ``token`` to ``UMP_API_TOKEN`` (needed once the server has
    tokens; see ``ump-llm tokens create``). ``timeout`` bounds each call, in seconds."""

    def __init__(
        self, api_url: str | None = None, token: str | None = None, *, timeout: float = 120.0
    ) -> None:
        url = (api_url or os.environ.get("UMP_AI_API_URL") or DEFAULT_API_URL).rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"UMP_AI_API_URL must be an http(s) URL such as {DEFAULT_API_URL}, not {url!r}"
            )
        if not parts.path:
            url += "/api"
        self.api_url = url
        self.gateway_url = url.removesuffix("/api") + "/v1"
        self.token = token if token is not None else (os.environ.get("UMP_API_TOKEN") or None)
        self.timeout = timeout
        self._gateways: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncOpenAI] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"ConnectionManager(api_url={self.api_url!r}, token={'set' if self.token else None})"

    async def __aenter__(self) -> ConnectionManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close this event loop's gateway client (REST calls hold no connection open)."""
        import asyncio

        client = self._gateways.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    # -- finding connections --------------------------------------------------------------

    async def get_connections(
        self,
        *,
        use_in_livekit: bool | None = None,
        use_in_mcp: bool | None = None,
        use_in_automation: bool | None = None,
        connection_type: str | None = None,
        tags: Iterable[str] | None = None,
        is_active: bool | None = None,
    ) -> list[Connection]:
        """Connections matching every filter given (``tags``: having all of them), by name.
        Their calls count as the integration asked for (``api`` when none)."""
        flags = {
            "use_in_livekit": use_in_livekit,
            "use_in_mcp": use_in_mcp,
            "use_in_automation": use_in_automation,
        }
        params: list[tuple[str, str]] = [
            (key, "true" if value else "false") for key, value in flags.items() if value is not None
        ]
        if connection_type is not None:
            params.append(("connection_type", connection_type))
        if is_active is not None:
            params.append(("is_active", "true" if is_active else "false"))
        params.extend(("tag", tag) for tag in ([tags] if isinstance(tags, str) else tags or ()))
        source = _source(flags)
        found: list[Connection] = []
        while True:
            page = await self._request(
                "GET",
                "/connections",
                params=[*params, ("limit", str(PAGE)), ("offset", str(len(found)))],
            )
            found.extend(Connection.from_api(item, self, source) for item in page["items"])
            if not page["items"] or len(found) >= page["total"]:
                return found

    async def get_pools(self, *, source: str = "api") -> list[Connection]:
        """Every pool, as connections of ``kind == "pool"``."""
        page = await self._request("GET", "/pools")
        return [Connection.from_pool(item, self, source) for item in page["items"]]

    async def get_connection(
        self,
        name_or_id: str | None = None,
        *,
        name: str | None = None,
        use_in_livekit: bool | None = None,
        use_in_mcp: bool | None = None,
        use_in_automation: bool | None = None,
    ) -> Connection:
        """The connection (else the pool) with that name or id, checked to be active and, for
        each ``use_in_*=True`` given, enabled for that integration; its calls count as that
        integration."""
        ref = name if name is not None else name_or_id
        if not ref:
            raise ValueError("name a connection: get_connection('Local Ollama') or name=...")
        flags = {
            "use_in_livekit": use_in_livekit,
            "use_in_mcp": use_in_mcp,
            "use_in_automation": use_in_automation,
        }
        source = _source(flags)
        path = quote(ref, safe="")
        try:
            connection = Connection.from_api(
                await self._request("GET", f"/connections/{path}"), self, source
            )
        except ConnectionNotFound:
            try:
                return Connection.from_pool(
                    await self._request("GET", f"/pools/{path}"), self, source
                )
            except ConnectionNotFound:
                raise ConnectionNotFound(
                    f"no connection or pool is named {ref!r} or has that id"
                    + (" (or this token may not see it)" if self.token else "")
                    + f": list them with GET {self.api_url}/connections or "
                    "`ump-llm connections list`",
                    status=404,
                ) from None
        for flag, wanted in flags.items():
            if wanted and not getattr(connection, flag):
                raise IntegrationNotEnabled(
                    f"connection {connection.name!r} is not enabled for "
                    f"{LABELS[INTEGRATIONS[flag]]}: turn on {flag} (PATCH "
                    f'{self.api_url}/connections/{connection.id} {{"{flag}": true}}) '
                    "or use a connection that has it"
                )
        if not connection.is_active:
            reason = f" (last error: {connection.last_error})" if connection.last_error else ""
            raise ConnectionInactive(
                f"connection {connection.name!r} is inactive{reason}: activate it with POST "
                f"{self.api_url}/connections/{connection.id}/activate once its upstream answers"
            )
        return connection

    async def test_connection(
        self, name_or_id: str, *, prompt: str | None = None, max_tokens: int | None = None
    ) -> Any:
        """The server's connection test (recorded in its history): the JSON it answers."""
        body: dict[str, Any] = {}
        if prompt is not None:
            body["prompt"] = prompt
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        return await self._request(
            "POST", f"/connections/{quote(name_or_id, safe='')}/test", json_body=body
        )

    async def events(
        self, types: Iterable[str] | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Follow the server's connection events (``GET /api/events``) for ever, reconnecting
        when the server goes away. Each (re)connection first yields
        ``{"type": "stream.opened", ...}``: events may have been missed before it, so re-read
        whatever you keep. Then each event: ``{"id", "type", "created_at", "data"}``."""
        import asyncio

        import aiohttp

        params = {"types": ",".join(types)} if types else {}
        delay = 0.5
        while True:
            try:
                timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=60)
                async with (
                    aiohttp.ClientSession(timeout=timeout) as session,
                    session.get(
                        f"{self.api_url}/events", params=params, headers=self._headers()
                    ) as response,
                ):
                    if response.status != 200:
                        self.raise_for(response.status, await response.read())
                    delay = 0.5
                    yield {"id": None, "type": "stream.opened", "created_at": None, "data": {}}
                    async for kind, event in _server_sent_events(response.content):
                        if kind in ENDINGS:  # the server dropped this stream: reconnect
                            break
                        if kind != "ready":
                            yield event
            except (aiohttp.ClientError, TimeoutError, ServerUnreachable):
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    # -- plumbing shared with Connection --------------------------------------------------

    def gateway(self) -> AsyncOpenAI:
        """This event loop's ``openai`` client for the gateway."""
        import asyncio

        loop = asyncio.get_running_loop()
        client = self._gateways.get(loop)
        if client is None:
            from openai import AsyncOpenAI

            client = AsyncOpenAI(
                base_url=self.gateway_url,
                api_key=self.token or "ump-no-token",
                timeout=self.timeout,
                max_retries=0,  # the gateway retries and fails over itself
            )
            self._gateways[loop] = client
        return client

    @contextlib.contextmanager
    def translated_errors(self, connection: Connection) -> Iterator[None]:
        """The ``openai`` client's exceptions as the SDK's, with the gateway's message."""
        import openai

        try:
            yield
        except openai.APITimeoutError:
            raise GatewayError(
                f"{connection.name!r} did not answer within {self.timeout:g} s "
                "(ConnectionManager(timeout=...) sets the limit)",
                code="timeout",
            ) from None
        except openai.APIConnectionError:
            raise ServerUnreachable(self._unreachable()) from None
        except openai.APIStatusError as exc:
            self.raise_for(exc.status_code, exc.body, GatewayError)
        except openai.APIError as exc:  # an error event in the middle of a stream
            message = exc.body.get("message") if isinstance(exc.body, dict) else None
            raise GatewayError(str(message or exc.message), code=exc.code) from None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _unreachable(self) -> str:
        return (
            f"cannot reach the ump-llm-connections server at {self.api_url}: start it "
            "(`make run` or `ump-llm serve`) or point UMP_AI_API_URL at it"
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> Any:
        import aiohttp

        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as s,
                s.request(
                    method,
                    self.api_url + path,
                    params=params,
                    json=json_body,
                    headers=self._headers(),
                ) as response,
            ):
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError):
            raise ServerUnreachable(self._unreachable()) from None
        if response.status >= 400:
            self.raise_for(response.status, body)
        return json.loads(body) if body else None

    def raise_for(
        self, status: int, body: object, otherwise: type[UMPError] = UMPError
    ) -> NoReturn:
        """Raise the exception for an error answer, REST (``{"error": {"message", "type"}}``)
        or gateway (OpenAI's ``{"error": {"message", "code"}}``, or the error object alone)."""
        if isinstance(body, bytes):
            try:
                body = json.loads(body)
            except ValueError:
                body = None
        error = body.get("error", body) if isinstance(body, dict) else None
        message = str(error.get("message")) if isinstance(error, dict) else f"HTTP {status}"
        code = error.get("code") if isinstance(error, dict) else None
        code = str(code) if code is not None else None
        if status == 401:
            raise Unauthorized(
                f"{message}: set UMP_API_TOKEN (or ConnectionManager(token=...)) to a token "
                "made with `ump-llm tokens create`",
                status=status,
                code=code,
            )
        kinds: dict[str | None, type[UMPError]] = {
            "model_not_found": ConnectionNotFound,
            "connection_inactive": ConnectionInactive,
            "integration_disabled": IntegrationNotEnabled,
        }
        by_status = {403: Forbidden, 404: ConnectionNotFound}
        kind = kinds.get(code) or by_status.get(status) or otherwise
        raise kind(message, status=status, code=code)


def _source(flags: dict[str, bool | None]) -> str:
    """The source calls count as: the first integration asked for, else ``api``."""
    return next((INTEGRATIONS[flag] for flag, wanted in flags.items() if wanted), "api")


async def _server_sent_events(
    content: aiohttp.StreamReader,
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Each event of a ``text/event-stream``: its name and its ``data`` parsed as JSON."""
    kind, data = "message", list[str]()
    async for raw in content:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                try:
                    payload = json.loads("\n".join(data))
                except ValueError:
                    payload = None
                if isinstance(payload, dict):
                    yield kind, payload
            kind, data = "message", []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            kind = line[6:].strip()
