"""The limiters, both of them: the in-process one and the one on the Redis at 127.0.0.1:6379.

Every test takes a fake clock, so windows roll over when the test says so. Redis tests use a
prefix of their own and delete its keys afterwards; they skip when no Redis answers, except
under CI, where they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from ump_llm_connections.gateway.limits import (
    KEY_TTL_S,
    Limiter,
    LimiterUnavailable,
    LocalLimiter,
    RedisLimiter,
    Reservation,
    create_limiter,
    redact_url,
)

REDIS_URL = os.environ.get("UMP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
START = 1_700_000_000 // 60 * 60 + 15.0  # 15 s into a minute


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def next_minute(self) -> None:
        self.now += 60


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def need_redis() -> None:
    if not redis_up():
        if os.environ.get("CI"):
            pytest.fail("no Redis on 127.0.0.1:6379")
        pytest.skip("no Redis on 127.0.0.1:6379")


MakeLimiter = Callable[..., Limiter]


async def delete_keys(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own, in a Redis that answers; its keys go afterwards."""
    need_redis()
    prefix = f"test:limits:{uuid.uuid4().hex}"
    yield prefix
    await delete_keys(prefix)


@pytest.fixture(params=["local", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[MakeLimiter]:
    """A factory of limiters of one kind; with Redis, all of one test share one prefix."""
    backend: str = request.param
    prefix = f"test:limits:{uuid.uuid4().hex}"
    if backend == "redis":
        need_redis()
    made: list[Limiter] = []

    def factory(clock: Callable[[], float] = time.time) -> Limiter:
        limiter: Limiter
        if backend == "local":
            limiter = LocalLimiter(clock=clock)
        else:
            limiter = RedisLimiter(REDIS_URL, prefix=prefix, clock=clock)
        made.append(limiter)
        return limiter

    yield factory
    for limiter in made:
        await limiter.close()
    if backend == "redis":
        await delete_keys(prefix)


def taken(result: Reservation | float) -> Reservation:
    assert isinstance(result, Reservation), f"refused, retry after {result}"
    return result


def refused(result: Reservation | float) -> float:
    assert not isinstance(result, Reservation), "admitted"
    assert 0 < result <= 60
    return result


async def test_rpm_admits_exactly_n(make: MakeLimiter) -> None:
    clock = FakeClock()
    limiter = make(clock)
    cid = uuid.uuid4()
    for _ in range(5):
        taken(await limiter.reserve(cid, rpm=5, tpm=None, tokens=10))
    assert refused(await limiter.reserve(cid, rpm=5, tpm=None, tokens=10)) == pytest.approx(45)
    clock.now += 44.5
    assert refused(await limiter.reserve(cid, rpm=5, tpm=None, tokens=0)) == pytest.approx(0.5)


async def test_tpm_admits_up_to_the_limit(make: MakeLimiter) -> None:
    limiter = make(FakeClock())
    cid = uuid.uuid4()
    for _ in range(3):
        taken(await limiter.reserve(cid, rpm=None, tpm=1000, tokens=300))
    refused(await limiter.reserve(cid, rpm=None, tpm=1000, tokens=300))
    # The refusal took nothing: exactly the 100 left still fit.
    taken(await limiter.reserve(cid, rpm=None, tpm=1000, tokens=100))
    refused(await limiter.reserve(cid, rpm=None, tpm=1000, tokens=1))


async def test_both_limits_apply(make: MakeLimiter) -> None:
    limiter = make(FakeClock())
    cid = uuid.uuid4()
    taken(await limiter.reserve(cid, rpm=2, tpm=1000, tokens=100))
    refused(await limiter.reserve(cid, rpm=2, tpm=1000, tokens=950))  # tokens
    taken(await limiter.reserve(cid, rpm=2, tpm=1000, tokens=100))
    refused(await limiter.reserve(cid, rpm=2, tpm=1000, tokens=1))  # requests


async def test_settle_lower_lets_more_through(make: MakeLimiter) -> None:
    limiter = make(FakeClock())
    cid = uuid.uuid4()
    first = taken(await limiter.reserve(cid, rpm=None, tpm=1000, tokens=600))
    refused(await limiter.reserve(cid, rpm=None, tpm=1000, tokens=600))
    await limiter.settle(first, 100)
    taken(await limiter.reserve(cid, rpm=None, tpm=1000, tokens=600))
    taken(await limiter.reserve(cid, rpm=None, tpm=1000, tokens=300))
    refused(await limiter.reserve(cid, rpm=None, tpm=1000, tokens=1))


async def test_settle_higher_blocks_sooner(make: MakeLimiter) -> None:
    limiter = make(FakeClock())
    cid = uuid.uuid4()
    first = taken(await limiter.reserve(cid, rpm=None, tpm=1000, tokens=100))
    await limiter.settle(first, 950)
    refused(await limiter.reserve(cid, rpm=None, tpm=1000, tokens=100))
    taken(await limiter.reserve(cid, rpm=None, tpm=1000, tokens=50))


async def test_settle_none_keeps_the_estimate(make: MakeLimiter) -> None:
    limiter = make(FakeClock())
    cid = uuid.uuid4()
    first = taken(await limiter.reserve(cid, rpm=None, tpm=1000, tokens=600))
    await limiter.settle(first, None)
    refused(await limiter.reserve(cid, rpm=None, tpm=1000, tokens=401))
    taken(await limiter.reserve(cid, rpm=None, tpm=1000, tokens=400))


async def test_settle_in_a_later_window_is_a_no_op(make: MakeLimiter) -> None:
    clock = FakeClock()
    limiter = make(clock)
    cid = uuid.uuid4()
    old = taken(await limiter.reserve(cid, rpm=None, tpm=1000, tokens=100))
    clock.next_minute()
    taken(await limiter.reserve(cid, rpm=None, tpm=1000, tokens=500))
    await limiter.settle(old, 1000)  # must not land in this window
    taken(await limiter.reserve(cid, rpm=None, tpm=1000, tokens=500))


async def test_oversized_request_fits_an_empty_window(make: MakeLimiter) -> None:
    limiter = make(FakeClock())
    cid = uuid.uuid4()
    taken(await limiter.reserve(cid, rpm=None, tpm=100, tokens=5000))
    refused(await limiter.reserve(cid, rpm=None, tpm=100, tokens=1))


async def test_unlimited_always_admits_and_costs_nothing(make: MakeLimiter) -> None:
    limiter = make(FakeClock())
    cid = uuid.uuid4()
    for _ in range(200):
        reservation = taken(await limiter.reserve(cid, rpm=None, tpm=None, tokens=10_000))
        await limiter.settle(reservation, 20_000)
    # None of that was counted: a limit of one request and 10 tokens is still untouched.
    taken(await limiter.reserve(cid, rpm=1, tpm=10, tokens=10))
    refused(await limiter.reserve(cid, rpm=1, tpm=None, tokens=0))  # and now it counts


async def test_connections_do_not_share_counters(make: MakeLimiter) -> None:
    limiter = make(FakeClock())
    a, b = uuid.uuid4(), uuid.uuid4()
    taken(await limiter.reserve(a, rpm=1, tpm=None, tokens=1))
    refused(await limiter.reserve(a, rpm=1, tpm=None, tokens=1))
    taken(await limiter.reserve(b, rpm=1, tpm=None, tokens=1))
    refused(await limiter.reserve(b, rpm=1, tpm=None, tokens=1))


async def test_window_rollover(make: MakeLimiter) -> None:
    clock = FakeClock()
    limiter = make(clock)
    cid = uuid.uuid4()
    first = taken(await limiter.reserve(cid, rpm=2, tpm=100, tokens=50))
    taken(await limiter.reserve(cid, rpm=2, tpm=100, tokens=50))
    wait = refused(await limiter.reserve(cid, rpm=2, tpm=100, tokens=50))
    clock.now += wait
    second = taken(await limiter.reserve(cid, rpm=2, tpm=100, tokens=100))
    assert second.window == first.window + 1
    refused(await limiter.reserve(cid, rpm=2, tpm=100, tokens=1))


async def test_local_drops_old_windows() -> None:
    clock = FakeClock()
    limiter = LocalLimiter(clock=clock)
    for _ in range(100):
        taken(await limiter.reserve(uuid.uuid4(), rpm=10, tpm=None, tokens=1))
    assert len(limiter._counts) == 100
    clock.next_minute()
    taken(await limiter.reserve(uuid.uuid4(), rpm=10, tpm=None, tokens=1))
    assert len(limiter._counts) == 1


async def test_redis_processes_share_one_allowance(redis_prefix: str) -> None:
    # Two limiters, two connection pools: as two server processes would have. The clock is
    # fixed so that a minute boundary cannot fall in the middle of the test.
    clock = FakeClock()
    one = RedisLimiter(REDIS_URL, prefix=redis_prefix, clock=clock)
    two = RedisLimiter(REDIS_URL, prefix=redis_prefix, clock=clock)
    cid = uuid.uuid4()
    try:
        results = await asyncio.gather(
            *((one if i % 2 else two).reserve(cid, rpm=50, tpm=None, tokens=7) for i in range(200))
        )
        admitted = [r for r in results if isinstance(r, Reservation)]
        assert len(admitted) == 50
        assert all(0 < r <= 60 for r in results if not isinstance(r, Reservation))
        key = one.key(cid, admitted[0].window)
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            counts = await client.hgetall(key)
        finally:
            await client.aclose()
        assert counts == {b"requests": b"50", b"tokens": b"350"}
    finally:
        await one.close()
        await two.close()


async def test_redis_keys_expire(redis_prefix: str) -> None:
    limiter = RedisLimiter(REDIS_URL, prefix=redis_prefix, clock=FakeClock())
    cid = uuid.uuid4()
    try:
        reservation = taken(await limiter.reserve(cid, rpm=3, tpm=None, tokens=1))
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            ttl = await client.ttl(limiter.key(cid, reservation.window))
        finally:
            await client.aclose()
        assert 0 < ttl <= KEY_TTL_S
    finally:
        await limiter.close()


async def test_redis_unreachable_raises_quickly_without_the_password() -> None:
    limiter = create_limiter("redis://user:secret@127.0.0.1:1/0")
    assert isinstance(limiter, RedisLimiter)
    started = time.monotonic()
    try:
        with pytest.raises(LimiterUnavailable) as info:
            await limiter.reserve(uuid.uuid4(), rpm=1, tpm=None, tokens=1)
    finally:
        await limiter.close()
    assert time.monotonic() - started < 3
    message = str(info.value)
    assert "127.0.0.1:1" in message
    assert "secret" not in message
    assert "user" not in message


def test_redact_url() -> None:
    assert redact_url("redis://user:pw@host:6379/2") == "redis://host:6379/2"
    assert redact_url("rediss://:pw@host/0?password=pw") == "rediss://host/0"
    assert redact_url("redis://host:6379") == "redis://host:6379"


def test_create_limiter_without_url_is_local() -> None:
    assert isinstance(create_limiter(None), LocalLimiter)
