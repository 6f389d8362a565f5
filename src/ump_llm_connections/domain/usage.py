"""Usage reports: totals, time buckets, per connection and per pool."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import NamedTuple

from pydantic import BaseModel

__all__ = [
    "ActivityList",
    "ConnectionActivity",
    "ConnectionUsage",
    "PoolUsage",
    "ReportRow",
    "SourceUsage",
    "UsageBucket",
    "UsageReport",
    "UsageStats",
]


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


class ReportRow(NamedTuple):
    """One usage row as the reports read it: by name, so a new column shifts nothing."""

    created_at: datetime
    connection_id: uuid.UUID
    prompt_tokens: int | None
    completion_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    reasoning_tokens: int | None
    latency_ms: float | None
    ttft_ms: float | None
    success: bool
    cost: float | None
    pool_id: uuid.UUID | None
    source: str
