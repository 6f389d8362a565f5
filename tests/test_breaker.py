"""The circuit breaker on a hand-turned clock: no sleeping, no server."""

from __future__ import annotations

import uuid

from ump_llm_connections.gateway.router import Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


A, B = uuid.uuid4(), uuid.uuid4()


def _breaker(clock: Clock) -> Breaker:
    return Breaker(threshold=3, cooldown_s=10.0, max_cooldown_s=35.0, clock=clock)


def test_opens_after_threshold_failures_in_a_row() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    breaker.failure(A)
    breaker.failure(A)
    assert breaker.available(A)
    breaker.failure(A)
    assert not breaker.available(A)
    assert breaker.available(B)  # circuits are per connection


def test_a_success_resets_the_count() -> None:
    breaker = _breaker(Clock())
    breaker.failure(A)
    breaker.failure(A)
    breaker.success(A)
    breaker.failure(A)
    breaker.failure(A)
    assert breaker.available(A)


def test_the_cooldown_ends_and_a_success_closes() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.failure(A)
    clock.now += 9.999
    assert not breaker.available(A)
    clock.now += 0.001
    assert breaker.available(A)  # half-open: traffic probes it
    breaker.success(A)
    breaker.failure(A)
    assert breaker.available(A)  # closed again: one failure is not enough


def test_a_failed_probe_reopens_with_a_doubled_cooldown_up_to_the_cap() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.failure(A)
    cooldowns = []
    for _ in range(3):
        opened = clock.now
        while not breaker.available(A):
            clock.now += 1.0
        cooldowns.append(clock.now - opened)
        breaker.failure(A)  # the probe fails: open at once, no new threshold to reach
        assert not breaker.available(A)
    assert cooldowns == [10.0, 20.0, 35.0]
