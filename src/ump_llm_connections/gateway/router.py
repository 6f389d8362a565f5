"""Deciding which connection serves a request: pools and their strategies, the circuit breaker,
recent latencies and monthly budgets. Pure in-process state; nothing here does I/O.

A plan is the ordered list of connections to try. The gateway walks it: the first that answers
serves; a retryable failure (timeout, unreachable, 429, 5xx) moves on to the next.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ump_llm_connections.domain import PoolStrategy

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Member:
    connection_id: uuid.UUID
    priority: int
    weight: int


@dataclass(frozen=True, slots=True)
class PoolRoute:
    id: uuid.UUID
    name: str
    strategy: PoolStrategy
    members: tuple[Member, ...]
    owner: str | None = None
    team: str | None = None


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    open_until: float = 0.0
    cooldown: float = 0.0


class Breaker:
    """Takes a connection out of rotation after ``threshold`` failures in a row, for a
    cooldown that doubles each time it fails again (up to ``max_cooldown_s``). When the
    cooldown is over, traffic probes it: one success closes the circuit, one failure reopens it.
    """

    def __init__(
        self,
        *,
        threshold: int = 3,
        cooldown_s: float = 15.0,
        max_cooldown_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = threshold
        self._cooldown_s = cooldown_s
        self._max_cooldown_s = max_cooldown_s
        self._clock = clock
        self._circuits: dict[uuid.UUID, _Circuit] = {}

    def available(self, connection_id: uuid.UUID) -> bool:
        circuit = self._circuits.get(connection_id)
        return circuit is None or self._clock() >= circuit.open_until

    def success(self, connection_id: uuid.UUID) -> None:
        if self._circuits.pop(connection_id, None) is not None:
            log.info("circuit closed for connection %s", connection_id)

    def failure(self, connection_id: uuid.UUID) -> None:
        circuit = self._circuits.setdefault(connection_id, _Circuit())
        circuit.failures += 1
        if circuit.failures >= self._threshold:
            circuit.cooldown = min(
                self._max_cooldown_s, circuit.cooldown * 2 if circuit.cooldown else self._cooldown_s
            )
            circuit.open_until = self._clock() + circuit.cooldown
            log.warning(
                "circuit open for connection %s for %.0f s after %d failures",
                connection_id,
                circuit.cooldown,
                circuit.failures,
            )


@dataclass
class Latencies:
    """A moving average of each connection's latency, for ``least_latency`` pools."""

    alpha: float = 0.2
    averages: dict[uuid.UUID, float] = field(default_factory=dict)

    def observe(self, connection_id: uuid.UUID, latency_ms: float) -> None:
        old = self.averages.get(connection_id)
        self.averages[connection_id] = (
            latency_ms if old is None else old + self.alpha * (latency_ms - old)
        )

    def get(self, connection_id: uuid.UUID) -> float:
        """Unmeasured connections come first, so each gets measured."""
        return self.averages.get(connection_id, 0.0)


@dataclass
class Spend:
    """Month-to-date spend per connection and per API token (UTC calendar month), for monthly
    budgets; both are keyed by their ids (UUIDs, which never collide)."""

    month: str = ""
    spent: dict[uuid.UUID, float] = field(default_factory=dict)
    warned: set[uuid.UUID] = field(default_factory=set)

    def reset(self, month: str, spent: dict[uuid.UUID, float]) -> None:
        if month != self.month:
            self.warned.clear()
        self.month, self.spent = month, dict(spent)

    def add(self, connection_id: uuid.UUID, cost: float | None, budget: float | None) -> bool:
        """Count a call's cost; True when it is the one that crossed the budget."""
        if not cost:
            return False
        before = self.spent.get(connection_id, 0.0)
        self.spent[connection_id] = before + cost
        return budget is not None and before < budget <= before + cost

    def over(self, connection_id: uuid.UUID, budget: float | None, name: str) -> bool:
        if budget is None or self.spent.get(connection_id, 0.0) < budget:
            return False
        if connection_id not in self.warned:
            self.warned.add(connection_id)
            log.warning(
                "%r is over its monthly budget (%.4f of %.4f): refused until %s ends",
                name,
                self.spent.get(connection_id, 0.0),
                budget,
                self.month,
            )
        return True


def order(
    pool: PoolRoute, *, key: str | None, latencies: Latencies, rng: random.Random
) -> list[Member]:
    """The members in the order the pool's strategy tries them."""
    members = list(pool.members)
    by_priority = sorted(members, key=lambda m: m.priority)
    if pool.strategy is PoolStrategy.priority:
        return by_priority
    if pool.strategy is PoolStrategy.least_latency:
        return sorted(by_priority, key=lambda m: latencies.get(m.connection_id))
    if pool.strategy is PoolStrategy.ab and key is not None:
        chosen = _pick(members, _unit(f"{pool.id}:{key}"))
        return [chosen, *(m for m in by_priority if m is not chosen)]
    # weighted (and ab without a key): a weighted random order (Efraimidis-Spirakis)
    weighted = [m for m in members if m.weight > 0]
    weighted.sort(key=lambda m: rng.random() ** (1.0 / m.weight), reverse=True)
    return weighted + [m for m in by_priority if m.weight <= 0]


def _unit(text: str) -> float:
    """A stable number in [0, 1) for a text: the same key lands in the same arm every time."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def _pick(members: list[Member], point: float) -> Member:
    total = sum(max(m.weight, 0) for m in members)
    if total <= 0:
        return min(members, key=lambda m: m.priority)
    mark = point * total
    for member in sorted(members, key=lambda m: str(m.connection_id)):
        mark -= max(member.weight, 0)
        if mark < 0:
            return member
    return members[-1]
