"""``GET /api/events``: the connection and pool events as server-sent events, live.

    event: ready                                  first, once subscribed
    data: {"types": ["connection.created", …]}

    id: evt_…                                     one per event, as webhooks get it
    event: connection.created
    data: {"id": "evt_…", "type": "connection.created", "created_at": "…", "data": {…}}

    : keepalive                                   every UMP_EVENTS_KEEPALIVE_S without an event

    event: overflow | shutdown | unauthorized     last: the client fell behind, the server is
    data: {"message": "…"}                        stopping, or the token was revoked or expired;
                                                  the stream then ends

Each client reads from its own bounded queue (``events.Feed``): one that falls behind is dropped
with ``overflow`` (the events queued before it are still sent), and never slows the publishers
or the other clients. A member hears only of what it may see, as its webhooks do. The stream
stops when the client leaves, and ends with ``shutdown`` as soon as the server starts stopping
(``App.stopping``): it never ends by itself, so uvicorn's graceful wait must not wait for it.
A token is checked once when a request comes in; a stream outlives that, so its token is checked
again every ``RECHECK_S``: revoked (here or on another replica) or expired, the stream ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ump_llm_connections.api.deps import Clean, PrincipalDep, refuse_unknown_params, runtime_of
from ump_llm_connections.clock import utcnow
from ump_llm_connections.domain.access import Principal
from ump_llm_connections.domain.events import EVENT_TYPES
from ump_llm_connections.errors import InvalidInput
from ump_llm_connections.events import Event, EventBus, Feed

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["events"], dependencies=[Clean])

PARAMS = frozenset({"types"})
KEEPALIVE = b": keepalive\n\n"
CLIENT_LEFT = "event stream client left"
OVERFLOW = "this client fell too far behind: events were dropped; reconnect and reload"
SHUTDOWN = "the server is shutting down: reconnect and reload"
LAPSED = "event stream token lapsed"
RECHECK_S = 1.0  # how often an open stream's token is checked again


class EventStreamResponse(Response):
    """The stream as a bare ASGI response: subscribes when sent, unsubscribes when done."""

    media_type = "text/event-stream"

    def __init__(
        self,
        bus: EventBus,
        caller: Principal,
        types: tuple[str, ...],
        *,
        keepalive_s: float,
        lapsed: Callable[[], str | None] | None = None,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._bus = bus
        self._caller = caller
        self._types = frozenset(types)
        self._ready = _frame("ready", {"types": list(types)})
        self._keepalive_s = keepalive_s
        self._lapsed = lapsed  # why the caller's token no longer holds; None: it never lapses
        self._why = ""

    def _wants(self, event: Event) -> bool:
        return event.type in self._types and event.heard_by(self._caller)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        feed = self._bus.feed(self._wants)
        watcher = asyncio.create_task(_watch(receive, task), name="event stream client")
        guard = None
        if self._lapsed is not None:
            guard = asyncio.create_task(self._guard(task, self._lapsed), name="event stream token")
        who = self._caller.name
        log.info("event stream for %s opened (%d open)", who, self._bus.feed_count)
        ended = "the client left"
        started = False
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            started = True
            await send({"type": "http.response.body", "body": self._ready, "more_body": True})
            while (event := await self._next(feed, send)) is not None:
                body = _frame(event.type, event.payload(), event.id)
                await send({"type": "http.response.body", "body": body, "more_body": True})
            ended = "overflow" if feed.overflowed else "shutdown"
            last = _frame(ended, {"message": OVERFLOW if feed.overflowed else SHUTDOWN})
            await send({"type": "http.response.body", "body": last, "more_body": False})
        except asyncio.CancelledError as exc:
            if exc.args not in ((CLIENT_LEFT,), (LAPSED,)):
                raise
            task.uncancel()
            if exc.args == (LAPSED,):
                ended = "unauthorized"
                message = f"{self._why}: reconnect with a valid token"
                if not started:
                    start = {"type": "http.response.start", "status": 200}
                    await send({**start, "headers": self.raw_headers})
                last = _frame(ended, {"message": message})
                await send({"type": "http.response.body", "body": last, "more_body": False})
        finally:
            watcher.cancel()
            if guard is not None:
                guard.cancel()
            feed.close()
            log.info("event stream for %s closed: %s (%d open)", who, ended, self._bus.feed_count)

    async def _guard(self, task: asyncio.Task[Any], lapsed: Callable[[], str | None]) -> None:
        """Cancel ``task`` when the caller's token lapses."""
        while True:  # polled: a revocation elsewhere reaches this replica only as a reload
            await asyncio.sleep(RECHECK_S)
            if (why := lapsed()) is not None:
                self._why = why
                task.cancel(LAPSED)
                return

    async def _next(self, feed: Feed, send: Send) -> Event | None:
        """The next event; a keepalive comment for each quiet ``keepalive_s`` meanwhile."""
        while True:
            try:
                async with asyncio.timeout(self._keepalive_s):
                    return await feed.next()
            except TimeoutError:
                await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})


def _frame(kind: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n"


async def _watch(receive: Receive, task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` when its client goes away."""
    while (await receive())["type"] != "http.disconnect":
        pass
    task.cancel(CLIENT_LEFT)


@router.get(
    "/events",
    summary="Connection and pool events, live (server-sent events)",
    response_class=Response,
    responses={
        200: {
            "description": "A text/event-stream: `ready`, then one event per connection or "
            "pool event this token may see, `: keepalive` comments, and at last `overflow`, "
            "`shutdown` or `unauthorized` (the token was revoked or expired).",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def stream_events(
    request: Request,
    caller: PrincipalDep,
    types: Annotated[
        str | None,
        Query(description="Comma-separated event types to hear; all of them when absent."),
    ] = None,
) -> EventStreamResponse:
    refuse_unknown_params(request, PARAMS)
    runtime = runtime_of(request)
    tokens = runtime.token_cache
    return EventStreamResponse(
        runtime.service.events,
        caller,
        _types(types),
        keepalive_s=runtime.settings.events_keepalive_s,
        lapsed=None if caller.token_id is None else lambda: tokens.lapsed(caller, utcnow()),
    )


def _types(value: str | None) -> tuple[str, ...]:
    if value is None:
        return EVENT_TYPES
    wanted = tuple(dict.fromkeys(t.strip() for t in value.split(",") if t.strip()))
    if not wanted:
        raise InvalidInput("types must name at least one event type", field="types")
    for name in wanted:
        if name not in EVENT_TYPES:
            shown = name if len(name) <= 64 else name[:61] + "..."
            raise InvalidInput(
                f"unknown event type '{shown}' in types; one of {', '.join(EVENT_TYPES)}",
                field="types",
            )
    return wanted
