"""Connection and pool events: published by the registry, the pools, the tester, the monitor
and the gateway; delivered to subscribers (webhooks) and feeds (``GET /api/events`` clients)
without ever blocking the code that published them.

``publish`` only appends to a queue; subscribers run in a background task of their own. A feed
is a listener that comes and goes: its own bounded queue, filled by that task without waiting.
A feed whose reader falls ``FEED_LIMIT`` events behind is dropped (``Feed.overflowed``) rather
than slow anyone down; all feeds end when the bus stops, or earlier with ``end_feeds``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ump_llm_connections.background import BackgroundTask
from ump_llm_connections.clock import utcnow
from ump_llm_connections.domain.access import Principal
from ump_llm_connections.domain.events import EVENT_TYPES

log = logging.getLogger(__name__)

MAX_QUEUE = 10_000
FEED_LIMIT = 1_000  # events a feed's reader may fall behind before it is dropped


@dataclass(frozen=True, slots=True)
class Event:
    """``scope`` is the owner and team of the resource it is about (never sent): who may hear
    of it. None: admins only."""

    type: str
    data: dict[str, Any]
    scope: tuple[str | None, str | None] | None = None
    id: str = field(default_factory=lambda: f"evt_{uuid.uuid4().hex}")
    created_at: datetime = field(default_factory=utcnow)

    def heard_by(self, viewer: Principal) -> bool:
        """Whether this viewer may hear of it: an admin of everything, a member only of what it
        may see."""
        if viewer.is_admin:
            return True
        return self.scope is not None and viewer.can_see(*self.scope)

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "created_at": self.created_at.isoformat(),
            "data": self.data,
        }


Subscriber = Callable[[Event], Awaitable[None]]


class Feed:
    """One reader's events, in order, from its own queue; ``close`` when done (unsubscribes).

    ``next`` returns None once the feed has ended: the bus stopped (or ended its feeds), or the
    reader fell too far behind (``overflowed``: the events queued before are still returned).
    """

    def __init__(self, bus: EventBus, wants: Callable[[Event], bool], limit: int) -> None:
        self._bus = bus
        self._wants = wants
        self._limit = limit
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()  # bounded by ``offer``
        self.overflowed = False
        self.ended = False

    def offer(self, event: Event) -> None:
        """Queue an event it wants; never waits. Past the limit the feed is dropped."""
        if self.ended or not self._wants(event):
            return
        if self._queue.qsize() >= self._limit:
            self.overflowed = True
            self.close()
            return
        self._queue.put_nowait(event)

    def close(self) -> None:
        """No more events (the reader left, fell behind, or the bus is stopping): ``next``
        returns None once the queued ones are read."""
        if not self.ended:
            self.ended = True
            self._queue.put_nowait(None)
            self._bus.unsubscribe_feed(self)

    async def next(self) -> Event | None:
        """The next event, or None when the feed has ended."""
        if self.ended and self._queue.empty():
            return None
        return await self._queue.get()


class EventBus:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[Event] | None = None
        self._subscribers: list[Subscriber] = []
        self._feeds: set[Feed] = set()
        self._feeds_ended = False
        self._delivery = BackgroundTask("events", self._run)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def feed(self, wants: Callable[[Event], bool], *, limit: int = FEED_LIMIT) -> Feed:
        """A new feed of the events ``wants`` accepts, from now on. Once the feeds are ended
        (the server is stopping), a new one starts ended."""
        feed = Feed(self, wants, limit)
        if self._feeds_ended:
            feed.close()
        else:
            self._feeds.add(feed)
        return feed

    def unsubscribe_feed(self, feed: Feed) -> None:
        self._feeds.discard(feed)

    @property
    def feed_count(self) -> int:
        return len(self._feeds)

    def end_feeds(self) -> None:
        """End every feed, and those opened later: the server is stopping."""
        self._feeds_ended = True
        for feed in list(self._feeds):
            feed.close()

    def publish(
        self,
        event_type: str,
        data: dict[str, Any],
        scope: tuple[str | None, str | None] | None = None,
    ) -> None:
        """Queue an event; never waits. Without a running bus (the CLI) events are dropped."""
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        if self._queue is None:
            return
        try:
            self._queue.put_nowait(Event(event_type, data, scope))
        except asyncio.QueueFull:
            log.warning("event queue full: %s dropped", event_type)

    async def start(self) -> None:
        self._queue = asyncio.Queue(MAX_QUEUE)
        self._delivery.start()

    async def stop(self) -> None:
        """Hand the events still queued to the subscribers and feeds, then stop; end the feeds."""
        if self._delivery.running and self._queue is not None:
            await self._queue.join()
            await self._delivery.stop()
        self.end_feeds()

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            event = await self._queue.get()
            try:
                for subscriber in self._subscribers:
                    try:
                        await subscriber(event)
                    except Exception:
                        log.exception("event subscriber failed on %s", event.type)
                for feed in list(self._feeds):
                    feed.offer(event)
            finally:
                self._queue.task_done()
