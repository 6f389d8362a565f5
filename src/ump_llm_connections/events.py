"""Connection events: published by the registry, the tester, the monitor and the gateway;
delivered to subscribers (webhooks) without ever blocking the code that published them.

``publish`` only appends to a queue; subscribers run in a background task of their own.
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
from ump_llm_connections.domain.events import EVENT_TYPES

log = logging.getLogger(__name__)

MAX_QUEUE = 10_000


@dataclass(frozen=True, slots=True)
class Event:
    """``scope`` is the owner and team of the resource it is about (never sent): who may hear
    of it. None: admins only."""

    type: str
    data: dict[str, Any]
    scope: tuple[str | None, str | None] | None = None
    id: str = field(default_factory=lambda: f"evt_{uuid.uuid4().hex}")
    created_at: datetime = field(default_factory=utcnow)

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "created_at": self.created_at.isoformat(),
            "data": self.data,
        }


Subscriber = Callable[[Event], Awaitable[None]]


class EventBus:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[Event] | None = None
        self._subscribers: list[Subscriber] = []
        self._delivery = BackgroundTask("events", self._run)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

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
        """Hand the events still queued to the subscribers, then stop."""
        if not self._delivery.running or self._queue is None:
            return
        await self._queue.join()
        await self._delivery.stop()

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
            finally:
                self._queue.task_done()
