"""Usage: recorded off the request path in batches, and summarised for the usage API.

Every gateway call adds one ``UsageEvent`` to a buffer (no I/O); a background task writes the
buffer every ``interval_s`` or as soon as it holds ``batch_size`` events, and once more on
shutdown, so a clean stop loses nothing. Rows are only ever appended: totals are computed when
read, never kept as counters updated per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ump_llm_connections.domain import (
    ConnectionUsage,
    PoolUsage,
    UsageBucket,
    UsageReport,
    UsageStats,
)
from ump_llm_connections.errors import InvalidInput
from ump_llm_connections.stats import percentile
from ump_llm_connections.store.usage import UsageStore

log = logging.getLogger(__name__)

MAX_BUFFER = 200_000  # if the database is down this long, the oldest events are dropped
MAX_WINDOW = timedelta(days=31)
MAX_BUCKETS = 500
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

    def row(self) -> dict[str, Any]:
        return {
            "connection_id": self.connection_id,
            "created_at": self.created_at,
            "source": self.source,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
            "success": self.success,
            "error_kind": self.error_kind,
            "cost": self.cost,
            "pool_id": self.pool_id,
        }


class UsageRecorder:
    def __init__(
        self, store: UsageStore, *, batch_size: int = 500, interval_s: float = 1.0
    ) -> None:
        self._store = store
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._buffer: list[UsageEvent] = []
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def record(self, event: UsageEvent) -> None:
        self._buffer.append(event)
        if len(self._buffer) >= self._batch_size:
            self._full.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-recorder")

    async def stop(self) -> None:
        """Stop the background task, then write what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        last_used: dict[uuid.UUID, datetime] = {}
        for event in batch:
            seen = last_used.get(event.connection_id)
            if seen is None or event.created_at > seen:
                last_used[event.connection_id] = event.created_at
        try:
            await self._store.append([e.row() for e in batch], last_used)
        except Exception as exc:  # a database outage is an operating condition, not a bug
            log.warning(
                "could not write %d usage rows (%s: %s); keeping them for the next try",
                len(batch),
                type(exc).__name__,
                str(exc)[:300],
            )
            self._buffer = (batch + self._buffer)[-MAX_BUFFER:]

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self._interval_s)
            self._full.clear()
            await self.flush()


def parse_duration(text: str, field: str) -> timedelta:
    match = DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(f"{field} must look like 30m, 24h or 7d", field=field)
    span = timedelta(seconds=int(match.group(1)) * UNITS[match.group(2)])
    if span > MAX_WINDOW:  # also keeps ``now - span`` inside the calendar
        raise InvalidInput(f"{field} can be at most 31d", field=field)
    return span


def report(
    rows: Iterable[tuple[Any, ...]],
    *,
    window: str,
    bucket: str | None,
    now: datetime,
    names: dict[uuid.UUID, str] | None = None,
    pool_names: dict[uuid.UUID, str] | None = None,
) -> UsageReport:
    """Totals, time buckets and (with ``names``) per-connection totals of usage rows."""
    span = parse_duration(window, "window")
    step = parse_duration(bucket, "bucket") if bucket else _auto_bucket(span)
    if span / step > MAX_BUCKETS:
        raise InvalidInput(f"window / bucket gives more than {MAX_BUCKETS} buckets", field="bucket")
    seconds = int(step.total_seconds())
    start = now - span
    first = datetime.fromtimestamp(start.timestamp() // seconds * seconds, UTC)
    count = math.ceil((now - first) / step)
    per_bucket: list[list[tuple[Any, ...]]] = [[] for _ in range(count)]
    per_connection: dict[uuid.UUID, list[tuple[Any, ...]]] = {}
    per_pool: dict[uuid.UUID, list[tuple[Any, ...]]] = {}
    everything: list[tuple[Any, ...]] = []
    for row in rows:
        when = row[0] if row[0].tzinfo else row[0].replace(tzinfo=UTC)
        if when < start:
            continue
        index = min(int((when - first) / step), count - 1)
        per_bucket[index].append(row)
        per_connection.setdefault(row[1], []).append(row)
        if row[8] is not None:
            per_pool.setdefault(row[8], []).append(row)
        everything.append(row)
    return UsageReport(
        window_start=start,
        window_end=now,
        bucket_seconds=seconds,
        totals=_stats(everything),
        buckets=[
            UsageBucket(start=first + i * step, **_stats(b).model_dump())
            for i, b in enumerate(per_bucket)
        ],
        connections=None
        if names is None
        else sorted(
            (
                ConnectionUsage(connection_id=cid, name=names.get(cid), **_stats(r).model_dump())
                for cid, r in per_connection.items()
            ),
            key=lambda c: -c.requests,
        ),
        pools=None
        if pool_names is None
        else sorted(
            (
                PoolUsage(pool_id=pid, name=pool_names.get(pid), **_stats(r).model_dump())
                for pid, r in per_pool.items()
            ),
            key=lambda p: -p.requests,
        ),
    )


def _auto_bucket(span: timedelta) -> timedelta:
    """About 24 to 60 buckets, on a round size."""
    for size in (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400):
        if span.total_seconds() / size <= 60:
            return timedelta(seconds=size)
    return timedelta(days=1)


def _stats(rows: list[tuple[Any, ...]]) -> UsageStats:
    # row: created_at, connection_id, prompt, completion, latency, ttft, success, cost, pool
    successes = sum(1 for r in rows if r[6])
    prompt = sum(r[2] or 0 for r in rows)
    completion = sum(r[3] or 0 for r in rows)
    costs = [r[7] for r in rows if r[7] is not None]
    return UsageStats(
        requests=len(rows),
        successes=successes,
        failures=len(rows) - successes,
        success_rate=round(successes / len(rows), 4) if rows else None,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        latency_p50_ms=percentile([r[4] for r in rows if r[4] is not None], 50),
        latency_p95_ms=percentile([r[4] for r in rows if r[4] is not None], 95),
        ttft_p50_ms=percentile([r[5] for r in rows if r[5] is not None], 50),
        cost=round(sum(costs), 8) if costs else None,
    )
