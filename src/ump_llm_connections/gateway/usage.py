"""Usage: recorded off the request path in batches (the reports read it back: ``reports``).

Every gateway call adds one ``UsageEvent`` to a buffer (no I/O); a background task writes the
buffer every ``interval_s`` (at most 1 s) or as soon as it holds ``batch_size`` events, and once
more on shutdown. A batch the database does not take goes to a local spill file, replayed
later: a stop loses nothing whatever the database does, a SIGKILL at most the buffer. Rows are
only ever appended: totals are computed when read, never kept as counters updated per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from ump_llm_connections.background import BackgroundTask
from ump_llm_connections.errors import InvalidInput
from ump_llm_connections.gateway.spill import SpillFile

log = logging.getLogger(__name__)

MAX_BUFFER = 200_000  # if neither the database nor the disk takes them, the oldest go
WRITE_TIMEOUT_S = 5.0  # a batch the database has not taken by then is spilled
REPLAY_BATCH = 1000  # spilled rows stored per transaction
REPLAY_RETRY_S = 10.0  # while the database refuses them, how often to try spilled rows again
MAX_WINDOW = timedelta(days=31)
DURATION = re.compile(r"^(\d{1,6})([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(slots=True)
class UsageEvent:
    connection_id: uuid.UUID
    created_at: datetime
    source: str
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float
    ttft_ms: float | None
    success: bool
    error_kind: str | None
    cost: float | None
    pool_id: uuid.UUID | None = None
    event_id: uuid.UUID | None = None  # given when written: replays store a row only once
    cache_read_tokens: int | None = None  # of prompt_tokens
    cache_write_tokens: int | None = None  # of prompt_tokens
    reasoning_tokens: int | None = None  # of completion_tokens
    token_id: uuid.UUID | None = None  # the API token that made the call

    def row(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "connection_id": self.connection_id,
            "created_at": self.created_at,
            "source": self.source,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
            "success": self.success,
            "error_kind": self.error_kind,
            "cost": self.cost,
            "pool_id": self.pool_id,
            "token_id": self.token_id,
        }


class UsageSink(Protocol):
    """Where the recorder stores its batches (``store.usage.UsageStore``): insert the rows (once
    each, if ``skip_stored``) and move each connection's ``last_used_at`` forward."""

    async def append(
        self,
        rows: list[dict[str, Any]],
        last_used: dict[uuid.UUID, datetime],
        *,
        skip_stored: bool = False,
    ) -> int: ...


class UsageRecorder:
    """Buffers usage events and writes them in batches; what the database refuses is spilled.

    The window lost on SIGKILL is the buffer: at most ``interval_s`` of events (plus a batch
    whose write is under way). A batch the database refuses, or does not take within
    ``write_timeout_s``, is appended to the spill file at once, and the file is replayed when
    the database takes writes again (and on the next start).
    """

    def __init__(
        self,
        store: UsageSink,
        spill: SpillFile,
        *,
        batch_size: int = 500,
        interval_s: float = 1.0,
        write_timeout_s: float = WRITE_TIMEOUT_S,
    ) -> None:
        self._store = store
        self._spill = spill
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._write_timeout_s = write_timeout_s
        self._buffer: list[UsageEvent] = []
        self._in_flight: list[UsageEvent] = []  # taken from the buffer, not yet stored
        self._spilled = spill.pending()
        self._next_replay = 0.0
        self._full = asyncio.Event()
        self._stopping = False
        self._writer = BackgroundTask("usage-recorder", self._run)
        self._late: set[asyncio.Future[int]] = set()  # writes past their timeout

    def record(self, event: UsageEvent) -> None:
        self._buffer.append(event)
        if len(self._buffer) >= self._batch_size:
            self._full.set()

    async def start(self) -> None:
        """Write batches in the background, starting with what an earlier run spilled."""
        self._writer.start()

    async def stop(self) -> None:
        """Let the background task finish its batch, then store (or spill) what is left."""
        self._stopping = True
        self._full.set()
        await self._writer.join()
        await self.flush()
        if self._buffer:
            log.error(
                "%d usage rows are lost: neither the database nor %s took them",
                len(self._buffer),
                self._spill.path,
            )

    def abandon(self) -> None:
        """The process is leaving without a clean stop: spill what is not stored yet (rows
        whose write was under way may be stored already: their replay skips them)."""
        events = self._in_flight + self._buffer
        self._buffer, self._in_flight = [], []
        if events and not self._spill_rows(events):
            log.error("%d usage rows are lost", len(events))

    async def flush(self) -> None:
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self._in_flight = batch
            for event in batch:
                if event.event_id is None:  # kept from a failed try: the same id again
                    event.event_id = uuid.uuid4()
            rows = [e.row() for e in batch]
            if await self._write(rows):
                self._next_replay = 0.0  # the database takes writes: replay now
            else:
                self._next_replay = time.monotonic() + REPLAY_RETRY_S
                if not await asyncio.to_thread(self._spill_rows, batch):
                    self._buffer = (batch + self._buffer)[-MAX_BUFFER:]  # both next time
            self._in_flight = []
        if self._spilled and time.monotonic() >= self._next_replay:
            await self.replay()

    async def replay(self) -> None:
        """Store the spilled rows (each once), then remove the file."""
        if not self._spilled:
            return
        rows = await asyncio.to_thread(self._spill.read)
        for start in range(0, len(rows), REPLAY_BATCH):
            if self._stopping and start:
                return  # the rest on the next start
            if not await self._write(rows[start : start + REPLAY_BATCH], replay=True):
                self._next_replay = time.monotonic() + REPLAY_RETRY_S
                return
        self._spill.clear()
        self._spilled = False
        if rows:
            log.info("replayed %d usage rows from %s", len(rows), self._spill.path)

    async def _write(self, rows: list[dict[str, Any]], *, replay: bool = False) -> bool:
        last_used: dict[uuid.UUID, datetime] = {}
        for row in rows:
            seen = last_used.get(row["connection_id"])
            if seen is None or row["created_at"] > seen:
                last_used[row["connection_id"]] = row["created_at"]
        # Waited for, not cancelled, at the timeout: the cleanup of a cancelled write can block
        # as long as the write (SQLite's busy timeout). If it is stored after all, the replay of
        # its spilled copy skips it.
        write = asyncio.ensure_future(self._store.append(rows, last_used, skip_stored=replay))
        done, _ = await asyncio.wait({write}, timeout=self._write_timeout_s)
        if not done:
            self._late.add(write)
            write.add_done_callback(_forget(self._late))
            problem = f"no answer in {self._write_timeout_s:g} s"
        elif (exc := write.exception()) is not None:
            problem = f"{type(exc).__name__}: {str(exc)[:300]}"
        else:
            return True
        log.warning(  # a database outage is an operating condition, not a bug
            "could not write %d usage rows (%s); they are kept in %s",
            len(rows),
            problem,
            self._spill.path,
        )
        return False

    def _spill_rows(self, events: list[UsageEvent]) -> bool:
        for event in events:
            if event.event_id is None:
                event.event_id = uuid.uuid4()
        try:
            self._spill.append([e.row() for e in events])
        except OSError as exc:  # a full disk, say: the caller keeps them for the next try
            log.error(
                "could not spill %d usage rows to %s (%s)", len(events), self._spill.path, exc
            )
            return False
        self._spilled = True
        return True

    async def _run(self) -> None:
        await self.replay()
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self._interval_s)
            self._full.clear()
            await self.flush()


def _forget(late: set[asyncio.Future[int]]) -> Callable[[asyncio.Future[int]], None]:
    def done(write: asyncio.Future[int]) -> None:
        late.discard(write)
        if not write.cancelled():
            write.exception()  # retrieved: it was reported when it timed out

    return done


def parse_duration(text: str, field: str) -> timedelta:
    match = DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(f"{field} must look like 30m, 24h or 7d", field=field)
    span = timedelta(seconds=int(match.group(1)) * UNITS[match.group(2)])
    if span > MAX_WINDOW:  # also keeps ``now - span`` inside the calendar
        raise InvalidInput(f"{field} can be at most 31d", field=field)
    return span
