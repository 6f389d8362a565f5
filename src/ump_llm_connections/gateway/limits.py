"""Per-connection limits: requests per minute (``rpm``) and tokens per minute (``tpm``).

The gateway calls ``reserve`` before it sends a request upstream, with the tokens it expects the
request to use, and ``settle`` once it knows the real count. Reserving takes one request and the
estimate from the current minute in one atomic check-and-take, so two concurrent requests can
never both squeeze into the last slot; a refusal takes nothing and says how long until the next
minute, for Retry-After.

Windows are fixed and aligned to the epoch minute (``window = int(clock() // 60)``): every
counter starts from zero at :00 of each minute. That is cheap (two integers per connection and
minute) and easy to explain, at the price of allowing up to twice the limit across a minute
boundary; a sliding window would smooth that out but costs a log of timestamps per connection.

Two choices worth knowing:

* A request whose estimate alone exceeds ``tpm`` is admitted when the window has no tokens
  counted yet. Refusing it would make it impossible forever (no window is ever larger), and the
  upstream, not us, is the judge of what one request may cost; it then fills the window.
* ``settle`` corrects only the window the reservation was taken in, and only while that window is
  still the current one: a finished window is never read again, so correcting it is pointless.

Two implementations: ``LocalLimiter`` keeps the counters in the process (one server process),
``RedisLimiter`` in Redis, shared by every process pointed at it (keys expire shortly after their
window, so nothing needs cleaning up). Both read the time from an injectable ``clock``; with
Redis, the processes' clocks are assumed to agree (NTP) to well under a minute.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from redis.asyncio import Redis

WINDOW_S = 60
NO_WINDOW = -1  # the window of an unlimited request's reservation: nothing to settle
KEY_TTL_S = 2 * WINDOW_S  # the window itself, plus slack for clocks that disagree a little

Clock = Callable[[], float]


class LimiterUnavailable(Exception):
    """The shared limiter's store (Redis) cannot be reached; the gateway decides what then."""


@dataclass(frozen=True, slots=True)
class Reservation:
    connection_id: uuid.UUID
    window: int  # the minute window (epoch seconds // 60) the reservation was taken in
    tokens: int  # tokens reserved (an estimate made by the caller)


class Limiter(Protocol):
    async def reserve(
        self, connection_id: uuid.UUID, *, rpm: int | None, tpm: int | None, tokens: int
    ) -> Reservation | float:
        """Take one request and `tokens` tokens from this minute's allowance, atomically.
        Returns a Reservation, or — when either limit would be exceeded — the seconds until the
        window resets (a float > 0, for Retry-After). Nothing is taken when refused."""

    async def settle(self, reservation: Reservation, actual_tokens: int | None) -> None:
        """Correct the token count once the real usage is known (None: keep the estimate).
        Only if still in the same window; a no-op otherwise."""

    async def close(self) -> None: ...


def _window(now: float) -> int:
    return int(now // WINDOW_S)


def _retry_after(now: float) -> float:
    """Seconds until the current window ends: in (0, 60]."""
    return max((_window(now) + 1) * WINDOW_S - now, 1e-3)


def _fits(requests: int, used: int, *, rpm: int | None, tpm: int | None, tokens: int) -> bool:
    """Whether one more request of ``tokens`` fits beside ``requests`` and ``used`` tokens."""
    if rpm is not None and requests + 1 > rpm:
        return False
    # used > 0: an empty window admits even a request larger than the whole tpm (see above).
    return tpm is None or used <= 0 or used + tokens <= tpm


class LocalLimiter:
    """Counters in a dict, for a single server process.

    The check-and-take has no ``await`` in it, so on one event loop it is atomic without a lock.
    Only the current window is kept: the first call in a new minute drops all the counters of
    the previous one, so memory is bounded by the connections used within one minute.
    """

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._window = NO_WINDOW
        self._counts: dict[uuid.UUID, list[int]] = {}  # connection -> [requests, tokens]

    def _current(self) -> tuple[float, int]:
        now = self._clock()
        window = _window(now)
        if window != self._window:
            self._counts.clear()
            self._window = window
        return now, window

    async def reserve(
        self, connection_id: uuid.UUID, *, rpm: int | None, tpm: int | None, tokens: int
    ) -> Reservation | float:
        tokens = max(tokens, 0)
        if rpm is None and tpm is None:
            return Reservation(connection_id, NO_WINDOW, tokens)
        now, window = self._current()
        counts = self._counts.setdefault(connection_id, [0, 0])
        if not _fits(counts[0], counts[1], rpm=rpm, tpm=tpm, tokens=tokens):
            return _retry_after(now)
        counts[0] += 1
        counts[1] += tokens
        return Reservation(connection_id, window, tokens)

    async def settle(self, reservation: Reservation, actual_tokens: int | None) -> None:
        if actual_tokens is None or reservation.window == NO_WINDOW:
            return
        _, window = self._current()
        counts = self._counts.get(reservation.connection_id)
        if window == reservation.window and counts is not None:
            counts[1] += max(actual_tokens, 0) - reservation.tokens

    async def close(self) -> None:
        self._counts.clear()


# One hash per connection and window: fields "requests" and "tokens".
# ARGV: rpm (-1: none), tpm (-1: none), tokens, ttl. Returns 1 when taken, 0 when refused.
_RESERVE = """
local counts = redis.call('HMGET', KEYS[1], 'requests', 'tokens')
local requests = tonumber(counts[1]) or 0
local used = tonumber(counts[2]) or 0
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
if rpm >= 0 and requests + 1 > rpm then return 0 end
if tpm >= 0 and used > 0 and used + tokens > tpm then return 0 end
redis.call('HINCRBY', KEYS[1], 'requests', 1)
redis.call('HINCRBY', KEYS[1], 'tokens', tokens)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# Only an existing hash is corrected: one that expired must not come back without a TTL.
_SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HINCRBY', KEYS[1], 'tokens', ARGV[1])
end
return 0
"""


class RedisLimiter:
    """Counters in Redis, shared by every server process that uses the same URL and prefix.

    Each reserve is one Lua script (EVALSHA), which Redis runs atomically: read both counters,
    decide, increment both and set the expiry. Timeouts are short and there is a single retry
    without backoff, because a limiter that stalls stalls every request behind it.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "ump:limits",
        clock: Clock = time.time,
        timeout_s: float = 1.0,
    ) -> None:
        # redis-py is imported here: a server without UMP_REDIS_URL never loads it (~10 MB)
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        self._url = url
        self._prefix = prefix
        self._clock = clock
        self._errors = (RedisConnectionError, RedisTimeoutError, OSError)
        self._redis: Redis = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1),
        )
        self._reserve = self._redis.register_script(_RESERVE)
        self._settle = self._redis.register_script(_SETTLE)

    def key(self, connection_id: uuid.UUID, window: int) -> str:
        return f"{self._prefix}:{connection_id}:{window}"

    async def reserve(
        self, connection_id: uuid.UUID, *, rpm: int | None, tpm: int | None, tokens: int
    ) -> Reservation | float:
        tokens = max(tokens, 0)
        if rpm is None and tpm is None:
            return Reservation(connection_id, NO_WINDOW, tokens)
        now = self._clock()
        window = _window(now)
        args = [-1 if rpm is None else rpm, -1 if tpm is None else tpm, tokens, KEY_TTL_S]
        try:
            taken = await self._reserve(keys=[self.key(connection_id, window)], args=args)
        except self._errors as exc:
            raise self._unavailable(exc) from None
        return Reservation(connection_id, window, tokens) if taken == 1 else _retry_after(now)

    async def settle(self, reservation: Reservation, actual_tokens: int | None) -> None:
        """Raises ``LimiterUnavailable`` too; the estimate then stands, which is the safe side."""
        if actual_tokens is None or reservation.window != _window(self._clock()):
            return
        difference = max(actual_tokens, 0) - reservation.tokens
        if difference == 0:
            return
        key = self.key(reservation.connection_id, reservation.window)
        try:
            await self._settle(keys=[key], args=[difference])
        except self._errors as exc:
            raise self._unavailable(exc) from None

    async def close(self) -> None:
        await self._redis.aclose()

    def _unavailable(self, exc: BaseException) -> LimiterUnavailable:
        message = f"cannot reach Redis at {redact_url(self._url)}: {exc}"
        password = urlsplit(self._url).password
        if password:
            message = message.replace(password, "[redacted]")
        return LimiterUnavailable(message)


def redact_url(url: str) -> str:
    """The URL without user, password and query (where redis-py also accepts a password)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def create_limiter(redis_url: str | None, *, prefix: str = "ump:limits") -> Limiter:
    """A Redis-backed limiter when a URL is configured (several processes), else a local one."""
    if redis_url:
        return RedisLimiter(redis_url, prefix=prefix)
    return LocalLimiter()
