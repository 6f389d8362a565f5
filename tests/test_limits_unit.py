"""The limiter's rules as pure functions, and the local limiter's Retry-After on a hand-turned
clock (tests/test_limits.py runs the same behaviour against Redis too)."""

from __future__ import annotations

import uuid

import pytest

from ump_llm_connections.gateway.limits import (
    NO_WINDOW,
    WINDOW_S,
    LocalLimiter,
    Reservation,
    _fits,
    _retry_after,
)

ONE = uuid.UUID(int=1)


@pytest.mark.parametrize(
    ("requests", "used", "rpm", "tpm", "tokens", "fits"),
    [
        (0, 0, None, None, 10**9, True),  # no limits
        (4, 0, 5, None, 1, True),  # the fifth request of five
        (5, 0, 5, None, 1, False),  # a sixth
        (0, 90, None, 100, 10, True),  # exactly up to tpm
        (0, 91, None, 100, 10, False),
        (0, 0, None, 100, 500, True),  # an empty window admits even an oversized request
        (0, 1, None, 100, 500, False),
        (5, 0, 5, 100, 1, False),  # both limits: the first that fails refuses
        (0, 100, 5, 100, 1, False),
    ],
)
def test_fits(
    requests: int, used: int, rpm: int | None, tpm: int | None, tokens: int, fits: bool
) -> None:
    assert _fits(requests, used, rpm=rpm, tpm=tpm, tokens=tokens) is fits


@pytest.mark.parametrize(
    ("now", "expected"),
    [(120.0, 60.0), (120.5, 59.5), (179.75, 0.25), (179.9999999, 1e-3)],
)
def test_retry_after_is_until_the_minute_ends(now: float, expected: float) -> None:
    assert _retry_after(now) == pytest.approx(expected, abs=1e-6)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_refusal_says_how_long_and_takes_nothing() -> None:
    clock = Clock(10 * WINDOW_S + 45.0)
    limiter = LocalLimiter(clock=clock)
    assert isinstance(await limiter.reserve(ONE, rpm=1, tpm=None, tokens=5), Reservation)
    assert await limiter.reserve(ONE, rpm=1, tpm=None, tokens=5) == pytest.approx(15.0)
    clock.now += 15.0  # the next minute
    taken = await limiter.reserve(ONE, rpm=1, tpm=None, tokens=5)
    assert taken == Reservation(ONE, 11, 5)


async def test_unlimited_reservations_have_no_window() -> None:
    limiter = LocalLimiter(clock=Clock(0.0))
    taken = await limiter.reserve(ONE, rpm=None, tpm=None, tokens=-3)
    assert taken == Reservation(ONE, NO_WINDOW, 0)
    await limiter.settle(taken, 1000)  # nothing to correct, and nothing breaks
