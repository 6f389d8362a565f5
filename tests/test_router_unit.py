"""``router.order`` and the in-process state beside it, without a server."""

from __future__ import annotations

import random
import uuid
from collections import Counter

from ump_llm_connections.domain import PoolStrategy
from ump_llm_connections.gateway.router import Latencies, Member, PoolRoute, Spend, order


def _members(*spec: tuple[int, int]) -> tuple[Member, ...]:
    """Members with (priority, weight), ids in the given order."""
    return tuple(
        Member(uuid.UUID(int=i + 1), priority, weight) for i, (priority, weight) in enumerate(spec)
    )


def _pool(strategy: PoolStrategy, members: tuple[Member, ...]) -> PoolRoute:
    return PoolRoute(uuid.UUID(int=99), "p", strategy, members)


def _order(
    pool: PoolRoute, key: str | None = None, latencies: Latencies | None = None, seed: int = 0
) -> list[Member]:
    return order(pool, key=key, latencies=latencies or Latencies(), rng=random.Random(seed))  # noqa: S311


def test_priority_is_lowest_first_and_stable() -> None:
    a, b, c = _members((2, 1), (0, 1), (2, 1))
    assert _order(_pool(PoolStrategy.priority, (a, b, c))) == [b, a, c]


def test_least_latency_tries_unmeasured_then_fastest() -> None:
    a, b, c = _members((0, 1), (1, 1), (2, 1))
    latencies = Latencies()
    latencies.observe(a.connection_id, 300.0)
    latencies.observe(b.connection_id, 100.0)
    assert _order(_pool(PoolStrategy.least_latency, (a, b, c)), latencies=latencies) == [c, b, a]


def test_latencies_are_a_moving_average() -> None:
    latencies = Latencies(alpha=0.5)
    one = uuid.uuid4()
    latencies.observe(one, 100.0)
    latencies.observe(one, 200.0)
    assert latencies.get(one) == 150.0
    assert latencies.get(uuid.uuid4()) == 0.0


def test_weighted_follows_the_weights_and_skips_zero_weights_until_last() -> None:
    a, b, z = _members((0, 3), (1, 1), (0, 0))
    pool = _pool(PoolStrategy.weighted, (a, b, z))
    rng = random.Random(7)  # noqa: S311 - a seeded order, not a secret
    firsts = Counter(order(pool, key=None, latencies=Latencies(), rng=rng)[0] for _ in range(4000))
    assert firsts[z] == 0
    assert 0.70 < firsts[a] / 4000 < 0.80  # 3 of 4
    assert all(_order(pool, seed=s)[-1] == z for s in range(20))


def test_ab_is_sticky_per_key_and_the_rest_follow_by_priority() -> None:
    a, b, c = _members((2, 1), (1, 1), (0, 1))
    pool = _pool(PoolStrategy.ab, (a, b, c))
    for key in ("alice", "bob", "carol"):
        first = _order(pool, key=key, seed=1)
        assert all(_order(pool, key=key, seed=s) == first for s in range(5))
        assert first[1:] == [m for m in (c, b, a) if m is not first[0]]
    arms = Counter(_order(pool, key=f"user-{i}")[0] for i in range(3000))
    assert all(800 < n < 1200 for n in arms.values()) and len(arms) == 3


def test_ab_without_a_key_is_weighted() -> None:
    a, b = _members((0, 1), (1, 0))
    assert _order(_pool(PoolStrategy.ab, (a, b))) == [a, b]


def test_ab_with_no_weight_anywhere_takes_the_first_priority() -> None:
    a, b = _members((1, 0), (0, 0))
    assert _order(_pool(PoolStrategy.ab, (a, b)), key="k")[0] == b


def test_spend_says_when_a_call_crosses_the_budget() -> None:
    spend = Spend()
    one = uuid.uuid4()
    spend.reset("2026-11", {one: 9.0})
    assert not spend.add(one, 0.5, 10.0)
    assert not spend.over(one, 10.0, "one")
    assert spend.add(one, 0.5, 10.0)  # reaches it exactly
    assert not spend.add(one, 1.0, 10.0)  # already past: crossed once only
    assert spend.over(one, 10.0, "one")
    assert not spend.over(one, None, "one")
    assert not spend.add(one, None, 10.0)


def test_a_new_month_starts_from_its_own_spend() -> None:
    spend = Spend()
    one = uuid.uuid4()
    spend.reset("2026-11", {one: 20.0})
    assert spend.over(one, 10.0, "one")
    spend.reset("2026-12", {})
    assert not spend.over(one, 10.0, "one")
    assert spend.warned == set()
