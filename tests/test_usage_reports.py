"""The usage reports are totalled by the database (grouped sums per bucket, connection, pool and
source; latency percentiles from log-scale bins), and agree with the rows they came from: sums
exactly, percentiles to within a bin's width."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import Database
from ump_llm_connections.clock import utcnow
from ump_llm_connections.config import Settings
from ump_llm_connections.domain import (
    ConnectionCreate,
    ConnectionType,
    LatencyGroup,
    PoolCreate,
    PoolMember,
    PoolStats,
    Role,
    Tally,
    UsageReport,
    UsageStats,
)
from ump_llm_connections.domain.access import Principal
from ump_llm_connections.gateway.usage import UsageEvent
from ump_llm_connections.reports import UsageReports
from ump_llm_connections.service import open_service
from ump_llm_connections.stats import percentile
from ump_llm_connections.store.usage import UsageStore
from ump_llm_connections.store.usage_report import UsageGroups

BIN_WIDTH = 0.021  # a latency bin is e ** (1 / 50) wide: about 2 %
MEMBER = Principal(uuid.uuid4(), "alice", Role.member, team="a")


@dataclass
class Found:
    events: list[UsageEvent]
    overall: UsageReport
    member: UsageReport
    single: UsageReport
    pool: PoolStats
    ids: dict[str, uuid.UUID]
    pool_id: uuid.UUID


def make_events(ids: dict[str, uuid.UUID], pool_id: uuid.UUID, now: datetime) -> list[UsageEvent]:
    rng = random.Random(7)  # noqa: S311 - seeded test data, not a secret
    events = []
    for n in range(800):
        name = rng.choice(list(ids))
        ok = rng.random() < 0.9
        parts = [rng.randint(0, 5) if rng.random() < 0.8 else None for _ in range(3)]
        events.append(
            UsageEvent(
                connection_id=ids[name],
                # 6 h back, leaving a minute for the report's own clock; 30 rows from before
                created_at=now - timedelta(seconds=rng.uniform(0, 6 * 3600 - 60))
                if n >= 30
                else now - timedelta(hours=7),
                source=rng.choice(["api", "livekit", "mcp", "automation"]),
                prompt_tokens=rng.randint(1, 900) if rng.random() < 0.95 else None,
                completion_tokens=rng.randint(1, 300),
                cache_read_tokens=parts[0],
                cache_write_tokens=parts[1],
                reasoning_tokens=parts[2],
                latency_ms=rng.lognormvariate(5, 1) if n != 31 else 0.0,  # a 0 ms call too
                ttft_ms=rng.lognormvariate(4, 0.7) if rng.random() < 0.4 else None,
                success=ok,
                error_kind=None if ok else "server_error",
                cost=rng.random() / 100 if rng.random() < 0.7 else None,
                pool_id=pool_id if name != "c" and rng.random() < 0.5 else None,
            )
        )
    return events


def read_reports(database: Database, folder: Path) -> Found:
    async def go() -> Found:
        service = await open_service(Settings(data_dir=folder, database_url=database.url))
        try:
            ids: dict[str, uuid.UUID] = {}
            for name, team in (("a", "a"), ("b", "a"), ("c", "b")):
                made = await service.registry.create(
                    ConnectionCreate(
                        name=name, connection_type=ConnectionType.local, model_name="m", team=team
                    )
                )
                ids[name] = made.id
            pool = await service.pools.create(
                PoolCreate(
                    name="p",
                    members=[
                        PoolMember(connection_id=ids["a"]),
                        PoolMember(connection_id=ids["b"]),
                    ],
                )
            )
            events = make_events(ids, pool.id, utcnow())
            store = UsageStore(service.sessions)
            await store.append([e.row() | {"event_id": uuid.uuid4()} for e in events], {})
            reports = UsageReports(
                store, UsageGroups(service.sessions), service.registry, service.pools
            )
            return Found(
                events,
                await reports.overall(window="6h", bucket="1h"),
                await reports.overall(window="6h", bucket="1h", caller=MEMBER),
                await reports.connection(str(ids["a"]), window="6h", bucket="30m"),
                await reports.pool(str(pool.id), window="6h"),
                ids,
                pool.id,
            )
        finally:
            await service.close()

    return asyncio.run(go())


@pytest.fixture
def found(fresh_database: Database, tmp_path: Path) -> Found:
    return read_reports(fresh_database, tmp_path)


def check(stats: UsageStats, events: list[UsageEvent]) -> None:
    """``stats`` is what ``events`` add up to."""
    assert stats.requests == len(events)
    assert stats.successes == sum(e.success for e in events)
    assert stats.failures == stats.requests - stats.successes
    assert stats.prompt_tokens == sum(e.prompt_tokens or 0 for e in events)
    assert stats.completion_tokens == sum(e.completion_tokens or 0 for e in events)
    assert stats.total_tokens == stats.prompt_tokens + stats.completion_tokens
    assert stats.cache_read_tokens == sum(e.cache_read_tokens or 0 for e in events)
    assert stats.cache_write_tokens == sum(e.cache_write_tokens or 0 for e in events)
    assert stats.reasoning_tokens == sum(e.reasoning_tokens or 0 for e in events)
    costs = [e.cost for e in events if e.cost is not None]
    assert stats.cost == (pytest.approx(sum(costs), abs=1e-7) if costs else None)
    latencies = [e.latency_ms for e in events]
    ttfts = [e.ttft_ms for e in events if e.ttft_ms is not None]
    for got, want in (
        (stats.latency_p50_ms, percentile(latencies, 50)),
        (stats.latency_p95_ms, percentile(latencies, 95)),
        (stats.ttft_p50_ms, percentile(ttfts, 50)),
    ):
        if want is None:
            assert got is None
        else:
            assert got == pytest.approx(want, rel=BIN_WIDTH, abs=0.01)


def within(found: Found, keep: Callable[[UsageEvent], bool] = lambda e: True) -> list[UsageEvent]:
    start = found.overall.window_start
    return [e for e in found.events if e.created_at >= start and keep(e)]


def test_the_totals_buckets_and_sources_add_up_the_rows(found: Found) -> None:
    report = found.overall
    check(report.totals, within(found))
    assert report.totals.requests == 770  # the 30 older rows are out of the window
    step = timedelta(seconds=report.bucket_seconds)
    assert len(report.buckets) in (6, 7)  # aligned on the hour: a partial one at each end
    assert report.buckets[0].start <= report.window_start < report.buckets[0].start + step
    for bucket in report.buckets:
        end = bucket.start + step
        check(bucket, [e for e in within(found) if bucket.start <= e.created_at < end])
    counts = [s.requests for s in report.sources]
    assert counts == sorted(counts, reverse=True) and len(counts) == 4
    for source in report.sources:
        check(source, [e for e in within(found) if e.source == source.source])


def test_per_connection_and_per_pool(found: Found) -> None:
    assert found.overall.connections is not None and found.overall.pools is not None
    names = {c.connection_id: c.name for c in found.overall.connections}
    assert names == {i: n for n, i in found.ids.items()}
    for usage in found.overall.connections:
        check(usage, [e for e in within(found) if e.connection_id == usage.connection_id])
    assert [p.name for p in found.overall.pools] == ["p"]
    check(found.overall.pools[0], within(found, lambda e: e.pool_id == found.pool_id))

    check(found.single.totals, within(found, lambda e: e.connection_id == found.ids["a"]))
    assert found.single.bucket_seconds == 1800
    assert found.single.connections is None and found.single.pools is None

    through_pool = within(found, lambda e: e.pool_id == found.pool_id)
    check(found.pool.totals, through_pool)
    for member in found.pool.members:
        check(member, [e for e in through_pool if e.connection_id == member.connection_id])


def test_a_member_reads_only_their_teams_connections(found: Found) -> None:
    team = {found.ids["a"], found.ids["b"]}
    check(found.member.totals, within(found, lambda e: e.connection_id in team))
    assert found.member.connections is not None
    assert {c.connection_id for c in found.member.connections} == team


def test_a_bin_holding_one_value_gives_it_exactly() -> None:
    tally = Tally()
    tally.add(LatencyGroup(None, 268, 1, 1, 0, 0, 0, 0, 0, None, 213.37))
    assert (tally.stats()["latency_p50_ms"], tally.stats()["latency_p95_ms"]) == (213.37, 213.37)
