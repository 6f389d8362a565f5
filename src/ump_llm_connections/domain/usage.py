"""Usage reports: totals, time buckets, per connection and per pool, folded from the grouped
sums the store reads (``LatencyGroup``, ``TtftGroup``) by ``Tally``."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import BaseModel

__all__ = [
    "ActivityList",
    "ConnectionActivity",
    "ConnectionUsage",
    "LatencyGroup",
    "PoolUsage",
    "SourceUsage",
    "Tally",
    "TtftGroup",
    "UsageBucket",
    "UsageReport",
    "UsageScope",
    "UsageStats",
]

LATENCY_BINS_PER_E = 50  # log-scale latency bins: each about 2 % wide (e ** (1 / 50))
MIN_BINNED_MS = 0.001  # shorter latencies share the lowest bin


class UsageStats(BaseModel):
    """Totals over a set of gateway calls. Rates and percentiles are null when there were none."""

    requests: int
    successes: int
    failures: int
    success_rate: float | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cache_read_tokens: int  # of prompt_tokens: read from the provider's prompt cache
    cache_write_tokens: int  # of prompt_tokens: written to it
    reasoning_tokens: int  # of completion_tokens: the model's thinking
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    ttft_p50_ms: float | None
    cost: float | None  # null when no call had a price


class UsageBucket(UsageStats):
    start: datetime


class ConnectionUsage(UsageStats):
    connection_id: uuid.UUID
    name: str | None  # null for a connection deleted since


class PoolUsage(UsageStats):
    pool_id: uuid.UUID
    name: str | None  # null for a pool deleted since


class SourceUsage(UsageStats):
    source: str  # livekit, mcp, automation or api


class UsageReport(BaseModel):
    window_start: datetime
    window_end: datetime
    bucket_seconds: int
    totals: UsageStats
    buckets: list[UsageBucket]
    connections: list[ConnectionUsage] | None = None  # only in the report across connections
    pools: list[PoolUsage] | None = None  # likewise: calls made through pools
    sources: list[SourceUsage] = []  # per source, most requests first


class ConnectionActivity(BaseModel):
    """A list row's activity: how fast the last call was and how many calls came today."""

    connection_id: uuid.UUID
    last_latency_ms: float | None  # of the last gateway call, or of the last test when none
    requests_today: int  # gateway calls since midnight UTC


class ActivityList(BaseModel):
    items: list[ConnectionActivity]


@dataclass(frozen=True, slots=True)
class UsageScope:
    """Which usage rows a report reads: those since ``start`` (of one connection, one pool or
    some connections), bucketed every ``step_s`` seconds from ``first_s`` (epoch seconds)."""

    start: datetime
    first_s: int
    step_s: int
    connection_id: uuid.UUID | None = None
    pool_id: uuid.UUID | None = None
    connection_ids: list[uuid.UUID] | None = None  # None: every connection


class LatencyGroup(NamedTuple):
    """The sums of the calls of one group (a bucket, connection, pool or source) whose latency
    fell in one log-scale bin (``bin`` is None for calls without a latency)."""

    key: Any
    bin: int | None
    requests: int
    successes: int
    prompt_tokens: int
    completion_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost: float | None  # None when no call of the group had a price
    latency_ms: float  # the sum of the group's latencies


class TtftGroup(NamedTuple):
    key: Any
    bin: int
    requests: int
    ttft_ms: float  # the sum


@dataclass(slots=True)
class Tally:
    """Running totals of groups, with latency histograms: bin -> [calls, sum of latencies]."""

    requests: int = 0
    successes: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float | None = None
    latency: dict[int, list[float]] = field(default_factory=dict)
    ttft: dict[int, list[float]] = field(default_factory=dict)

    def add(self, group: LatencyGroup) -> None:
        self.requests += group.requests
        self.successes += group.successes
        self.prompt_tokens += group.prompt_tokens
        self.completion_tokens += group.completion_tokens
        self.cache_read_tokens += group.cache_read_tokens
        self.cache_write_tokens += group.cache_write_tokens
        self.reasoning_tokens += group.reasoning_tokens
        if group.cost is not None:
            self.cost = (self.cost or 0.0) + group.cost
        if group.bin is not None:
            _count(self.latency, group.bin, group.requests, group.latency_ms)

    def add_ttft(self, group: TtftGroup) -> None:
        _count(self.ttft, group.bin, group.requests, group.ttft_ms)

    def merge(self, other: Tally) -> None:
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.cost is not None:
            self.cost = (self.cost or 0.0) + other.cost
        for bin_, (n, total) in other.latency.items():
            _count(self.latency, bin_, int(n), total)
        for bin_, (n, total) in other.ttft.items():
            _count(self.ttft, bin_, int(n), total)

    def stats(self) -> dict[str, Any]:
        """The ``UsageStats`` fields of what was added."""
        n = self.requests
        return {
            "requests": n,
            "successes": self.successes,
            "failures": n - self.successes,
            "success_rate": round(self.successes / n, 4) if n else None,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "latency_p50_ms": _percentile(self.latency, 50),
            "latency_p95_ms": _percentile(self.latency, 95),
            "ttft_p50_ms": _percentile(self.ttft, 50),
            "cost": None if self.cost is None else round(self.cost, 8),
        }


_COUNTS = (
    "requests",
    "successes",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def _count(histogram: dict[int, list[float]], bin_: int, n: int, total: float) -> None:
    seen = histogram.get(bin_)
    if seen is None:
        histogram[bin_] = [n, total]
    else:
        seen[0] += n
        seen[1] += total


def _percentile(histogram: dict[int, list[float]], pct: int) -> float | None:
    """Nearest rank over the bins; the value is the mean of the bin the rank falls in (within
    a bin's width of the exact one, and exact when the bin holds one value)."""
    calls = sum(n for n, _ in histogram.values())
    if not calls:
        return None
    rank = max(1, math.ceil(pct / 100 * calls))
    seen = 0.0
    for bin_ in sorted(histogram):
        n, total = histogram[bin_]
        seen += n
        if seen >= rank:
            return round(total / n, 2)
    raise AssertionError("unreachable: the ranks add up to the calls")
